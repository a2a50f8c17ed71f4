import { NodeAllowList } from '../security/node-allow.js';
import { NodeClient, type NodeClientOptions } from './node-client.js';

/** One NodeClient per live member; follows membership (it never decides it). */
export class NodePool {
  private readonly nodes = new Map<string, NodeClient>();
  private readonly opts: NodeClientOptions;
  /** Which addresses may get a connection (cache.allowed_addresses); the admin routes ask it too. */
  readonly allow: NodeAllowList;

  constructor(opts: NodeClientOptions) {
    this.allow = opts.allow ?? new NodeAllowList([]);
    this.opts = { ...opts, allow: this.allow };
  }

  /**
   * Open clients for new members, close those of members that left (or whose address changed);
   * returns what changed. A member whose address the allow-list refuses gets a client in state
   * `refused`: no connection, every command fails at once.
   */
  sync(members: readonly { id: string; address: string }[]): {
    opened: string[];
    closed: string[];
  } {
    const want = new Map(members.map((m) => [m.id, m.address]));
    const opened: string[] = [];
    const closed: string[] = [];
    for (const [id, client] of this.nodes) {
      if (want.get(id) !== client.address) {
        this.nodes.delete(id);
        void client.close();
        closed.push(id);
      }
    }
    for (const [id, address] of want) {
      if (!this.nodes.has(id)) {
        this.nodes.set(id, new NodeClient(id, address, this.opts));
        opened.push(id);
      }
    }
    return { opened, closed };
  }

  /** The client of a member, if it is in the pool. */
  get(id: string): NodeClient | undefined {
    return this.nodes.get(id);
  }

  /** Every client, in id order. */
  all(): NodeClient[] {
    return [...this.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Close every client. */
  async close(): Promise<void> {
    const all = [...this.nodes.values()];
    this.nodes.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}
