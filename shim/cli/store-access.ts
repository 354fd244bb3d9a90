// Which page store a command works on, and whether there is one yet. The CLI never creates
// a store: a root without an index is one no checkpoint has used, and reading it (or
// collecting its garbage) has an empty answer; creating files there would only leave
// root-owned directories behind a typo in --root.
import * as fs from 'node:fs';
import { PageStore } from '../store/page-store';
import { StoreLayout } from '../store/store-layout';

export function storeExists(root: string): boolean {
  return fs.existsSync(new StoreLayout(root).indexFile);
}

export function noStoreText(root: string): string {
  return `no page store at ${root} yet (the first checkpoint taken with pageshare creates it)`;
}

/**
 * Run fn on the store at root, closing it afterwards, or return absent() when root has no
 * store.
 */
export async function withExistingStore<T>(root: string, fn: (store: PageStore) => T | Promise<T>, absent: () => T): Promise<T> {
  if (!storeExists(root)) return absent();
  const store = PageStore.open(root);
  try {
    // A checkpoint taken a moment ago is indexed just after its call returned: show it.
    await store.awaitPendingIngests();
    return await fn(store);
  } finally {
    store.close();
  }
}
