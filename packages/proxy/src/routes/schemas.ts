/** JSON schemas shared by routes: they document the API in /openapi.json. */
export const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
    },
  },
} as const;

/** `{key}` path parameter. */
export const keyParams = {
  type: 'object',
  properties: { key: { type: 'string', description: 'percent-encoded key, 1-512 bytes of UTF-8' } },
  required: ['key'],
} as const;

/** A TTL: duration string or seconds. */
export const ttlSchema = {
  description: 'duration ("500ms", "30s", "1h30m") or a number of seconds; absent = default TTL',
  oneOf: [{ type: 'string' }, { type: 'number', minimum: 0 }],
} as const;

/** Map of key → error code in batch responses. */
export const failedSchema = { type: 'object', additionalProperties: { type: 'string' } } as const;

/** Security requirement for admin calls. */
export const adminSecurity = [{ bearer: [] }];
