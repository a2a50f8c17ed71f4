/**
 * The security headers of every answer, as name/value pairs. The API answers JSON to programs,
 * so the set is what protects a JSON answer that a browser might be tricked into loading: no
 * MIME sniffing (a value must never run as HTML or script), no framing, and no reads of an
 * answer from another origin's page (Spectre-style leaks of cached values). The rest of helmet's
 * defaults (COOP, Origin-Agent-Cluster, Referrer-Policy, HSTS, X-DNS-Prefetch-Control,
 * X-Download-Options, X-Permitted-Cross-Domain-Policies, X-XSS-Protection) guard HTML documents,
 * legacy plugins or TLS, which this plain-HTTP JSON API does not serve; HSTS belongs to the TLS
 * terminator in front of it. Every header costs each answer its validation in node:http.
 */
export const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'SAMEORIGIN'],
  ['cross-origin-resource-policy', 'same-origin'],
];
