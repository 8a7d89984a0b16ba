/** @module protocol/constants: numbers from the specification apart from numbers that are ours to tune
 *  (docs/style.md §11). Pure. */

// Specification (RFC 5572 and deployed clients, docs/protocol.md): change only with the spec.
export const TSP_PORT = 3653;
export const UDP_HEADER_BYTES = 8;
/** Word 1 of the UDP header is 0xF0000000 | seq: the nibble marks control (docs/protocol.md §2.2). */
export const CONTROL_NIBBLE = 0xf;
export const SEQUENCE_MODULUS = 2 ** 28;
export const SUPPORTED_VERSIONS = ['2.0.0', '2.0.1', '2.0.2'] as const;
export type TspVersion = (typeof SUPPORTED_VERSIONS)[number];

// Implementation limits: ours, each with its reason (docs/style.md §10).
/** Longest line buffered before LF: the longest line in the recorded sessions is the DIGEST response
 *  (~260 bytes of base64); 2 KiB leaves room for long usernames while stopping a peer that never ends a line. */
export const MAX_LINE_BYTES = 2048;
/** Largest Content-length accepted from a client (docs/protocol.md §2.6: bound N, ≤ 8 KiB, else 500). The
 *  largest recorded request is 265 bytes. */
export const MAX_CONTENT_LENGTH = 8192;
/** Largest UDP control datagram processed; anything bigger cannot be a valid request. */
export const MAX_CONTROL_DATAGRAM = UDP_HEADER_BYTES + 64 + MAX_CONTENT_LENGTH;
/** Pause between the DIGEST rspauth line and `200 Success` over TCP: gogoc reads them with separate recv()
 *  calls and hangs if they share a segment; 300 ms worked (docs/protocol.md §5.4, recording 07). */
export const TCP_RSPAUTH_PAUSE_MS = 300;
/** Bytes an IPv4 and a UDP header add to every datagram on the wire. Amplification is a matter of bytes on the
 *  wire, so the anti-amplification budget counts them (a 23-byte VERSION is 51 bytes on the wire). */
export const UDP_IPV4_OVERHEAD = 28;
/** QUIC's anti-amplification factor (RFC 9000 §8.1): until a peer has shown that it receives our datagrams, we
 *  send it at most this many times the bytes it sent us. TSP has no token to echo except the DIGEST-MD5 nonce,
 *  so an anonymous or PLAIN session over UDP stays under this bound for its whole negotiation. A real
 *  session uses about 1.7 of it (the offer answers a create of about half its size). */
export const AMPLIFICATION_FACTOR = 3;
/** A cached reply is sent again for at most this many retransmissions of its request: gogoc sends a request
 *  at most 8 times (docs/protocol.md §2.3), so 7 resends serve every real client. */
export const MAX_REPLY_RESENDS = 7;
/** How long a TCP connection stays open after its negotiation ended (tunnel accepted): long enough for a
 *  client's last message, short enough that connections do not pile up. gogoc and tspc send nothing after the
 *  accept and the tunnel does not depend on the connection (docs/protocol.md §2.5). */
export const TCP_LINGER_MS = 2000;
/** The 2.0.0 DIGEST-MD5 quirk (truncated HA1, docs/protocol.md §5.6) is accepted only when at least this many
 *  bytes of the stored secret X precede its first 0x00: fewer would let a response be guessed in far fewer
 *  tries than the password (none at all when X starts with 0x00). */
export const QUIRK200_MIN_PREFIX = 8;
