import { renderFields, renderTable } from './text-table';

describe('renderTable', () => {
  it('lines up columns, numbers to the right, without trailing spaces', () => {
    const rows = [
      { id: 'a', n: 5, note: 'x' },
      { id: 'longer-id', n: 1234, note: '' },
    ];
    const text = renderTable(
      [
        { header: 'ID', value: (r: (typeof rows)[number]) => r.id },
        { header: 'N', value: (r) => String(r.n), align: 'right' },
        { header: 'NOTE', value: (r) => r.note },
      ],
      rows,
    );
    expect(text).toBe(['ID            N  NOTE', 'a             5  x', 'longer-id  1234'].join('\n') + '\n');
  });

  it('prints the header alone for no rows', () => {
    expect(renderTable([{ header: 'ID', value: (r: string) => r }], [])).toBe('ID\n');
  });
});

describe('renderFields', () => {
  it('lines up values after their labels, with an optional indent', () => {
    expect(renderFields([['a', '1'], ['long label', '2']], '  ')).toBe('  a           1\n  long label  2\n');
  });
});
