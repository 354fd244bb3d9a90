// containerd invokes shims with Go-style flags: a single dash, the value as the next
// argument, boolean flags alone, and the action last (`-namespace ns -id c1 start`).
// Generic CLI parsers read `-namespace` as bundled short options, so this is parsed here.
import { InvalidArgumentError } from '../errors/shim-error';

export type ShimAction = 'start' | 'delete' | 'serve';

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  socket: string;
  debug: boolean;
  version: boolean;
  action: ShimAction | undefined;
}

const STRING_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: 'namespace',
  address: 'address',
  'publish-binary': 'publishBinary',
  id: 'id',
  bundle: 'bundle',
  socket: 'socket',
};
const BOOLEAN_FLAGS: Record<string, keyof ShimFlags> = { debug: 'debug', v: 'version' };
const ACTIONS: readonly ShimAction[] = ['start', 'delete', 'serve'];
/** Go's strconv.ParseBool, which its flag package uses for `-flag=value`. */
const GO_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const GO_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

function parseGoBool(name: string, value: string): boolean {
  if (GO_TRUE.includes(value)) return true;
  if (GO_FALSE.includes(value)) return false;
  throw new InvalidArgumentError(`invalid boolean value "${value}" for -${name}`);
}

export function parseShimFlags(argv: readonly string[]): ShimFlags {
  const flags: ShimFlags = {
    namespace: '',
    address: '',
    publishBinary: '',
    id: '',
    bundle: '',
    socket: '',
    debug: false,
    version: false,
    action: undefined,
  };
  const values = flags as unknown as Record<string, string | boolean | undefined>;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-')) {
      if (!(ACTIONS as readonly string[]).includes(arg)) {
        throw new InvalidArgumentError(`unknown action "${arg}" (expected start, delete or serve)`);
      }
      flags.action = arg as ShimAction;
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    const stringKey = STRING_FLAGS[name];
    const booleanKey = BOOLEAN_FLAGS[name];
    if (stringKey) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new InvalidArgumentError(`flag -${name} needs a value`);
      values[stringKey] = value;
    } else if (booleanKey) {
      values[booleanKey] = inline === undefined ? true : parseGoBool(name, inline);
    } else {
      throw new InvalidArgumentError(`unknown flag -${name}`);
    }
  }
  return flags;
}
