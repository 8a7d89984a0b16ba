/** @module cli/password: reading a password for the CLI: from a terminal without echo (asked twice), or the
 *  first line of standard input for scripts (--password-stdin). */

import { createInterface } from 'node:readline';
import { BrokerError } from '../errors.js';

async function firstLine(): Promise<string> {
  const rl = createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    rl.close();
    return line;
  }
  throw new BrokerError('API_BAD_REQUEST', 'no password on standard input');
}

async function askHidden(prompt: string): Promise<string> {
  if (!process.stdin.isTTY)
    throw new BrokerError('API_BAD_REQUEST', 'standard input is not a terminal: use --password-stdin');
  process.stdout.write(prompt);
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  let value = '';
  try {
    return await new Promise<string>((resolve, reject) => {
      const onData = (buf: Buffer) => {
        for (const ch of buf.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            process.stdout.write('\n');
            return resolve(value);
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            return reject(new BrokerError('API_BAD_REQUEST', 'interrupted'));
          }
          if (ch === '\u007f') value = value.slice(0, -1);
          else value += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
  }
}

export async function readPassword(fromStdin: boolean, prompt: string, confirm: boolean): Promise<string> {
  if (fromStdin) return firstLine();
  const p = await askHidden(prompt);
  if (confirm && (await askHidden('Again: ')) !== p) throw new BrokerError('API_BAD_REQUEST', 'the passwords differ');
  return p;
}
