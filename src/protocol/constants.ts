/** @module protocol/constants: numbers from the specification apart from numbers that are ours to tune
 *  (STYLE.md §11). Pure. */

// Specification (RFC 5572 and deployed clients, tsp-protocol.md): change only with the spec.
export const TSP_PORT = 3653;
export const UDP_HEADER_BYTES = 8;
/** Word 1 of the UDP header is 0xF0000000 | seq: the nibble marks control (tsp-protocol.md §2.2). */
export const CONTROL_NIBBLE = 0xf;
export const SEQUENCE_MODULUS = 2 ** 28;
export const SUPPORTED_VERSIONS = ['2.0.0', '2.0.1', '2.0.2'] as const;
export type TspVersion = (typeof SUPPORTED_VERSIONS)[number];

// Implementation limits: ours, each with its reason (STYLE.md §10).
/** Longest line buffered before LF: the longest line in the recorded sessions is the DIGEST response
 *  (~260 bytes of base64); 2 KiB leaves room for long usernames while stopping a peer that never ends a line. */
export const MAX_LINE_BYTES = 2048;
/** Largest Content-length accepted from a client (tsp-protocol.md §2.6: bound N, ≤ 8 KiB, else 500). The
 *  largest recorded request is 265 bytes. */
export const MAX_CONTENT_LENGTH = 8192;
/** Largest UDP control datagram processed; anything bigger cannot be a valid request. */
export const MAX_CONTROL_DATAGRAM = UDP_HEADER_BYTES + 64 + MAX_CONTENT_LENGTH;
/** Pause between the DIGEST rspauth line and `200 Success` over TCP: gogoc reads them with separate recv()
 *  calls and hangs if they share a segment; 300 ms worked (tsp-protocol.md §5.4, recording 07). */
export const TCP_RSPAUTH_PAUSE_MS = 300;
