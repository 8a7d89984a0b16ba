/** @module admin/tokens: admin API tokens, the one path for the CLI (`tsp-broker token …`) and the REST API.
 *  A token is `tspb_` + 32 random bytes (base64url), shown once at creation; the store keeps only its SHA-256,
 *  so a copy of the database lets nobody in. Every token acts with the admin role; its audit actor is
 *  `token:<name>`. Creation and revocation are audited. A token may be given an expiry (in whole days) at
 *  creation, after which it is refused like a revoked one. Its last use is recorded at most once a minute
 *  (TOUCH_EVERY_MS): writing on every request would turn each API read into a store write.
 *  Imports store types, errors and the clock only. */

import { createHash, randomBytes } from 'node:crypto';
import { BrokerError } from '../errors.js';
import type { ApiToken, Store } from '../store/types.js';
import { systemClock, type Clock } from '../clock.js';

/** Marks our tokens in logs and secret scanners. */
export const TOKEN_PREFIX = 'tspb_';
/** 256 bits of randomness: guessing is hopeless, so a plain hash (no salt, no KDF) is enough to store. */
const TOKEN_BYTES = 32;
/** `last_used_at` is written at most this often per token, so API traffic does not turn every read into a write. */
const TOUCH_EVERY_MS = 60_000;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Longest expiry a token can be given at creation (about ten years). */
export const MAX_EXPIRY_DAYS = 3650;
const DAY_MS = 86_400_000;

export interface TokenOptions {
  /** Whole days from now after which the token is refused (1..MAX_EXPIRY_DAYS); absent: never. */
  expiresInDays?: number | undefined;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class TokenService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Creates a token; the returned `token` is the only copy there will ever be. STORE_CONFLICT on a used name. */
  async create(actor: string, name: string, opts: TokenOptions = {}): Promise<{ token: string; record: ApiToken }> {
    if (!NAME.test(name))
      throw new BrokerError(
        'API_BAD_REQUEST',
        'token name must be 1–64 letters, digits and . _ - (starting with a letter or digit)',
      );
    const days = opts.expiresInDays;
    if (days !== undefined && (!Number.isInteger(days) || days < 1 || days > MAX_EXPIRY_DAYS))
      throw new BrokerError(
        'API_BAD_REQUEST',
        `token expiry must be a whole number of days from 1 to ${MAX_EXPIRY_DAYS}`,
      );
    const token = TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
    const now = this.clock.now();
    const expiresAt = days === undefined ? null : now + days * DAY_MS;
    const record = await this.store.createApiToken(
      { name, tokenHash: hashToken(token), createdBy: actor, expiresAt },
      now,
    );
    await this.store.addAudit({
      at: now,
      actor,
      action: 'token.create',
      target: name,
      detail: expiresAt === null ? null : { expiresAt },
    });
    return { token, record };
  }

  list(): Promise<ApiToken[]> {
    return this.store.listApiTokens();
  }

  /** STORE_NOT_FOUND when there is no token of that name. */
  async revoke(actor: string, name: string): Promise<void> {
    if (!(await this.store.deleteApiToken(name))) throw new BrokerError('STORE_NOT_FOUND', `no token named ${name}`);
    await this.store.addAudit({ at: this.clock.now(), actor, action: 'token.revoke', target: name, detail: null });
  }

  /** The token's record when `token` is a current token (known and not expired), else why it is refused.
   *  Never throws for a bad token. */
  async verify(token: string): Promise<{ record: ApiToken } | { refused: 'invalid' | 'expired' }> {
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) return { refused: 'invalid' };
    const record = await this.store.findApiToken(hashToken(token));
    if (!record) return { refused: 'invalid' };
    const now = this.clock.now();
    if (record.expiresAt !== null && now >= record.expiresAt) return { refused: 'expired' };
    if (record.lastUsedAt === null || now - record.lastUsedAt > TOUCH_EVERY_MS)
      await this.store.touchApiToken(record.id, now);
    return { record };
  }
}
