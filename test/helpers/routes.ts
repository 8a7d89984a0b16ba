/** Route export in tests: what a kernel routing table holds, read with `ip -j` inside a namespace. */
import { execCommand, type Netns } from './netns.js';

/** The destinations of one family's routes in `table` with protocol tag `protocol` (any tag when null), sorted;
 *  a table that does not exist yet is empty. */
export async function tableRoutes(
  ns: Netns,
  family: '-4' | '-6',
  table: number | string,
  protocol: number | null,
): Promise<string[]> {
  const filter = protocol === null ? [] : ['proto', String(protocol)];
  const r = await execCommand('ip', ['-n', ns.name, '-j', family, 'route', 'show', 'table', String(table), ...filter]);
  if (r.code !== 0) {
    if (/FIB table does not exist/.test(r.stderr)) return [];
    throw new Error(`ip route show failed: ${r.stderr}`);
  }
  const rows = JSON.parse(r.stdout || '[]') as { dst: string }[];
  // ip -j writes a host route without its length
  return rows.map((row) => (row.dst.includes('/') ? row.dst : `${row.dst}/${family === '-6' ? 128 : 32}`)).sort();
}

/** A TUN device in `ns`, up (a persistent one: no process holds it, so it has no carrier, which routes allow). */
export async function tunDevice(ns: Netns, name: string): Promise<void> {
  await ns.ip('tuntap', 'add', 'dev', name, 'mode', 'tun');
  await ns.ip('link', 'set', 'dev', name, 'up');
}
