/** @module protocol/framing/lines: line ends and the NULs C clients leave behind (docs/protocol.md §2.7). Pure. */

/** `b` without its trailing NULs (some clients send C strings). */
export function stripTrailingNuls(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

/** Removes one trailing CR LF (or LF) and trailing NULs from a line datagram's body. */
export function lineText(b: Buffer): Buffer {
  let body = stripTrailingNuls(b);
  if (body.length && body[body.length - 1] === 0x0a) body = body.subarray(0, body.length - 1);
  if (body.length && body[body.length - 1] === 0x0d) body = body.subarray(0, body.length - 1);
  return body;
}

/** The text of the line up to `lf` (exclusive), without a trailing CR. */
export function headerText(b: Buffer, lf: number): string {
  return b.subarray(0, lf).toString('latin1').replace(/\r$/, '');
}

/** Whether `b` holds only whitespace and NULs (an empty poll, or blank lines between messages). */
export function isBlank(b: Buffer | string): boolean {
  return /^[\s\0]*$/.test(typeof b === 'string' ? b : b.toString('latin1'));
}
