/**
 * @dcache/ring — pure core: the ketama ring (twemproxy-compatible), replica
 * selection, batch planning and the membership document. No I/O.
 */
export { formatAddress, nodeIdFor, type ParsedAddress, parseAddress } from './address.js';
export { groupByOwner, NO_OWNER, planBatch } from './batch.js';
export {
  type ByteHash,
  byteHash,
  fnv1a64Bytes,
  HASH_NAMES,
  type HashName,
  hashString,
  md5Bytes,
  murmurBytes,
} from './hash.js';
export {
  activeNodes,
  checksum,
  compareEntries,
  compareRouting,
  digest,
  docVersion,
  emptyDoc,
  liveEntries,
  MAX_ENTRIES,
  MAX_ID_LENGTH,
  MAX_VERSION,
  MAX_WEIGHT,
  MEMBER_STATES,
  type MemberChange,
  type MemberEntry,
  type MemberState,
  type MembershipDoc,
  MIN_WEIGHT,
  merge,
  RESERVED_IDS,
  ROUTING_STATES,
  type RoutingEntry,
  type RoutingState,
  routingState,
  setRouting,
  upsertEntry,
  VersionLimitError,
  validateDoc,
} from './membership.js';
export {
  KETAMA_POINTS_PER_SERVER,
  ketamaPointsFor,
  Ring,
  type RingNode,
  type RingNodeInput,
  type RingOptions,
} from './ring.js';
