import { describe, expectTypeOf, it } from 'vitest';
import type * as api from '../src/index.js';
import type {
  BatchDeleteResult,
  BatchGetResult,
  BatchSetResult,
  DcacheClient,
  DcacheClientError,
  DeleteResult,
  ErrorCode,
  FailedMap,
  FlushResult,
  Health,
  JsonValue,
  KeysPage,
  NetworkErrorCode,
  OwnerInfo,
  RingView,
  SetResult,
  Stats,
} from '../src/index.js';

// These assertions are checked by `tsc` (npm run typecheck covers test/); at run time they are no-ops.

type IsAny<T> = 0 extends 1 & T ? true : false;
type Prev = [never, 0, 1, 2, 3, 4, 5, 6];
/** True when `any` appears anywhere in T (properties, elements, parameters, results), to depth 6. */
type HasAny<T, D extends number = 6> = [D] extends [never]
  ? false
  : IsAny<T> extends true
    ? true
    : T extends string | number | boolean | bigint | symbol | null | undefined
      ? false // also `string & Record<never, never>`: do not descend into String's methods
      : T extends AbortSignal | ReadonlyMap<unknown, unknown>
        ? false // platform types (their lib declarations use any), taken as they are
        : T extends (...args: infer A) => infer R
          ? true extends HasAny<R, Prev[D]> | HasAny<A[number], Prev[D]>
            ? true
            : false
          : T extends Promise<infer P>
            ? HasAny<P, Prev[D]>
            : T extends AsyncGenerator<infer Y, unknown, unknown>
              ? HasAny<Y, Prev[D]>
              : T extends object
                ? true extends { [K in keyof T]-?: HasAny<T[K], Prev[D]> }[keyof T]
                  ? true
                  : false
                : false;

declare const c: DcacheClient;

type Methods = {
  [K in keyof DcacheClient]: DcacheClient[K];
};

describe('public types', () => {
  it('contain no any: every result type, every client method, every export', () => {
    expectTypeOf<HasAny<RingView>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<Stats>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<Health>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<OwnerInfo>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<KeysPage>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<BatchGetResult>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<BatchSetResult>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<BatchDeleteResult>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<FlushResult>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<JsonValue>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<DcacheClientError>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<Methods>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<InstanceType<typeof api.DcacheNetworkError>>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<InstanceType<typeof api.DcacheTimeoutError>>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<InstanceType<typeof api.DcacheAbortError>>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<ConstructorParameters<typeof api.DcacheClient>>>().toEqualTypeOf<false>();
    expectTypeOf<HasAny<typeof api.isDcacheClientError>>().toEqualTypeOf<false>();
    // The checker itself works:
    // biome-ignore lint/suspicious/noExplicitAny: the negative control of the check.
    expectTypeOf<HasAny<{ a: { b: () => Promise<any> } }>>().toEqualTypeOf<true>();
  });

  it('methods resolve to the documented result types', () => {
    expectTypeOf<DcacheClient['set']>().returns.resolves.toEqualTypeOf<SetResult>();
    expectTypeOf<DcacheClient['del']>().returns.resolves.toEqualTypeOf<DeleteResult>();
    expectTypeOf<DcacheClient['exists']>().returns.resolves.toEqualTypeOf<boolean>();
    expectTypeOf<DcacheClient['ring']>().returns.resolves.toEqualTypeOf<RingView>();
    expectTypeOf<DcacheClient['addNode']>().returns.resolves.toEqualTypeOf<RingView>();
    expectTypeOf<DcacheClient['batchSet']>().returns.resolves.toEqualTypeOf<BatchSetResult>();
    expectTypeOf<DcacheClient['batchDel']>().returns.resolves.toEqualTypeOf<BatchDeleteResult>();
    expectTypeOf<DcacheClient['health']>().returns.resolves.toEqualTypeOf<Health>();
    expectTypeOf<DcacheClient['metrics']>().returns.resolves.toEqualTypeOf<string>();
    expectTypeOf<ReturnType<typeof getWithDefault>>().resolves.toEqualTypeOf<JsonValue>();
    expectTypeOf<ReturnType<typeof c.get<{ id: number }>>>().resolves.toEqualTypeOf<{
      id: number;
    }>();
    expectTypeOf<ReturnType<typeof c.tryGet<string>>>().resolves.toEqualTypeOf<
      string | undefined
    >();
    expectTypeOf<ReturnType<typeof c.batchGet<number>>>().resolves.toEqualTypeOf<
      BatchGetResult<number>
    >();
    expectTypeOf<BatchGetResult<number>['items']>().toEqualTypeOf<Record<string, number>>();
    expectTypeOf<BatchSetResult['failed']>().toEqualTypeOf<FailedMap>();
  });

  it('errors carry typed codes; network and server errors are distinct classes', () => {
    expectTypeOf<DcacheClientError['code']>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<DcacheClientError['status']>().toEqualTypeOf<number>();
    expectTypeOf<DcacheClientError['failed']>().toEqualTypeOf<FailedMap | undefined>();
    expectTypeOf<'KEY_NOT_FOUND'>().toExtend<ErrorCode>();
    expectTypeOf<api.DcacheNetworkError['code']>().toEqualTypeOf<NetworkErrorCode>();
    expectTypeOf<api.DcacheTimeoutError>().toExtend<api.DcacheNetworkError>();
    expectTypeOf<api.DcacheNetworkError>().not.toExtend<DcacheClientError>();
    expectTypeOf<api.DcacheAbortError['code']>().toEqualTypeOf<'ABORTED'>();
    // Options are checked: a ttl must be a string or a number, a weight a number.
    expectTypeOf<Parameters<DcacheClient['set']>[2]>().toExtend<
      { ttl?: string | number } | undefined
    >();
    expectTypeOf(wrongCalls).toBeFunction();
  });
});

/** Never called: `get` without a type argument resolves to JsonValue. */
function getWithDefault(client: DcacheClient) {
  return client.get('k');
}

/** Never called: only compiled, to prove these calls do not type-check. */
function wrongCalls(c: DcacheClient): void {
  // @ts-expect-error a ttl is not a boolean
  void c.set('k', 1, { ttl: true });
  // @ts-expect-error the drain state is a union, not any string
  void c.updateNode('n', { state: 'gone' });
  // @ts-expect-error a weight is a number
  void c.addNode('h:1', { weight: '2' });
}
