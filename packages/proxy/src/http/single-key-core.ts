import { DcacheError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { asJsonText, checkKey, checkObject, checkTtl, serializeValue } from '../validate.js';

/**
 * The core of the single-key routes, for every front end (Fastify's routes and the node:http fast
 * path): validation, the cache call, hit/miss counts and the 200 body. Errors are thrown as
 * DcacheError and answered by the front end through errorAnswer.
 */
export interface SingleKeyOps {
  /** The 200 body of a GET (`{"key","value"}` with the stored JSON text spliced in). */
  get(key: string): Promise<string>;
  /** True when the key exists (HEAD). */
  head(key: string): Promise<boolean>;
  /** Store a PUT body; resolves with the 200 answer. */
  put(key: string, body: unknown): Promise<{ key: string; ttl_ms: number }>;
  /** Delete; resolves with the 200 answer, throws KEY_NOT_FOUND. */
  del(key: string): Promise<{ key: string; deleted: true }>;
}

/** Validation, metrics and cache calls of the single-key API, over a runtime. */
export function singleKeyOps(rt: Runtime): SingleKeyOps {
  const { cache, config, metrics } = rt;
  const maxKey = config.limits.maxKeyBytes;
  const maxValue = config.limits.maxValueBytes;
  const defaultTtl = config.cache.defaultTtl;
  // With the RESP front end on, any bytes may be stored under a key: check values fully.
  const strictJson = config.resp.port !== 0;
  const hitGet = metrics.localCounter(metrics.hits, { op: 'get' });
  const missGet = metrics.localCounter(metrics.misses, { op: 'get' });
  const hitHead = metrics.localCounter(metrics.hits, { op: 'head' });
  const missHead = metrics.localCounter(metrics.misses, { op: 'head' });
  return {
    get(k) {
      let key: string;
      try {
        key = checkKey(k, maxKey);
      } catch (e) {
        return Promise.reject(e);
      }
      return cache.get(key).then((raw) => {
        if (raw === null) {
          missGet.inc();
          throw new DcacheError('KEY_NOT_FOUND');
        }
        hitGet.inc();
        // The stored text is already JSON: splice it in, never re-serialise it.
        return `{"key":${JSON.stringify(key)},"value":${asJsonText(raw, strictJson)}}`;
      });
    },
    async head(k) {
      const key = checkKey(k, maxKey);
      const found = await cache.exists(key);
      (found ? hitHead : missHead).inc();
      return found;
    },
    put(k, b) {
      let key: string;
      let text: string;
      let ttlMs: number;
      try {
        key = checkKey(k, maxKey);
        if (b === undefined || b === null)
          throw new DcacheError('MISSING_VALUE', 'the body must be {"value": ..., "ttl"?: ...}');
        const body = checkObject(b, 'the body');
        if (!('value' in body)) throw new DcacheError('MISSING_VALUE');
        ttlMs = checkTtl(body.ttl, defaultTtl);
        text = serializeValue(body.value, maxValue, config.limits.maxValueDepth);
      } catch (e) {
        return Promise.reject(e);
      }
      return cache.set(key, text, ttlMs).then(() => ({ key, ttl_ms: ttlMs }));
    },
    async del(k) {
      const key = checkKey(k, maxKey);
      if (!(await cache.del(key))) throw new DcacheError('KEY_NOT_FOUND');
      return { key, deleted: true };
    },
  };
}

/** Body limit of `PUT /api/v1/cache/{key}`: the value limit plus room for the envelope. */
export const putBodyLimit = (rt: Runtime): number => rt.config.limits.maxValueBytes + 64 * 1024;
