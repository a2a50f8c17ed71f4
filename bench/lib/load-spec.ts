/**
 * One request template of a load. Each connection cycles through the templates in order, taking
 * each template's paths and bodies in turn (at most 256 distinct requests per load).
 */
export interface RequestSpec {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Paths used in turn. */
  paths: readonly string[];
  /** Bodies used in turn alongside the paths (same counter). */
  bodies?: readonly string[];
  /** Content-Type of the bodies (default application/json). */
  contentType?: string;
}

/** What the load worker runs: a warm-up, then one measured autocannon run. */
export interface LoadSpec {
  /** Origin of the server under test, e.g. http://127.0.0.1:8080. */
  url: string;
  connections: number;
  durationS: number;
  warmupS: number;
  requests: readonly RequestSpec[];
  /** When set, the worker writes every response as Float64 triples (epoch ms, latency ms, status). */
  samplesFile?: string;
}

/** Latency percentiles in ms over the measured run's responses (any status; see load-worker). */
export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Outcome of one measured run. */
export interface LoadResult {
  /** Epoch ms when the measured run started and ended. */
  startedAt: number;
  endedAt: number;
  durationS: number;
  requests: number;
  /** Responses per second (any status). */
  rps: number;
  /** Responses per status code. */
  status: Record<string, number>;
  /** Socket errors and request timeouts seen by autocannon. */
  errors: number;
  timeouts: number;
  latency: Latency;
}

/** Messages the worker prints, one JSON object per stdout line. */
export type WorkerMessage =
  | { event: 'start'; at: number }
  | { event: 'end'; at: number }
  | { event: 'result'; result: LoadResult }
  | { event: 'error'; message: string };
