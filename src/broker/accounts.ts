/** @module broker/accounts: the one path for account management (docs/style.md §9): the CLI, the REST API and
 *  the web UI all call these functions, so they cannot drift apart. Every change is audited.
 *
 *  An operation that ends tunnels gives one end reason whatever the front end (END_REASON). In the running
 *  broker (`live` given) the live tunnels end at once; the CLI opens the store itself, and the running broker
 *  ends them at its next sweep from the audit trail, with the same reason (broker/audit-follow.ts). */

import { BrokerError } from '../errors.js';
import type { Account, AccountLimits, AccountStore, AuditStore, EndReason, Page, Role } from '../store/types.js';
import { makeCredentials, verifyPassword } from './credentials.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';

/** Usernames appear quoted in DIGEST-MD5 and in gogoc.conf: keep them to a safe alphabet. */
const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export function checkUsername(username: string): void {
  if (!USERNAME.test(username))
    throw new BrokerError(
      'API_BAD_REQUEST',
      'username must be 1–64 characters of letters, digits and . _ @ - (starting with a letter or digit)',
    );
}

/** The end reason of each account operation that ends tunnels (the same from the API, the UI and the CLI). */
export const END_REASON = { disable: 'account_disabled', delete: 'account_deleted' } as const satisfies Record<
  string,
  EndReason
>;

/** The running broker's live tunnels, as account operations need them. */
export interface LiveTunnelControl {
  endAccountTunnels(accountId: number, reason: EndReason): Promise<number>;
  /** After a deletion: withdraw what was published for the account (its reverse-DNS delegation) now. */
  accountDeleted?(accountId: number): void;
  /** The account was enabled again: its static 6in4 tunnel, if it has one with an endpoint, comes back. */
  accountEnabled?(accountId: number): Promise<void>;
}

export class AccountService {
  constructor(
    private readonly store: AccountStore & AuditStore,
    private readonly realm: string,
    private readonly clock: Clock = systemClock,
    private readonly live?: LiveTunnelControl,
  ) {}

  private audit(actor: string, action: string, target: string, detail: Record<string, unknown> | null = null) {
    return this.store.addAudit({ at: this.clock.now(), actor, action, target, detail });
  }

  /** `webOnly`: no DIGEST-MD5 secret is stored (Account.webOnly); the role does not imply it. */
  async create(
    actor: string,
    p: { username: string; password: string; role?: Role; limits?: AccountLimits; webOnly?: boolean },
  ): Promise<Account> {
    checkUsername(p.username);
    const creds = await makeCredentials(p.username, p.password, this.realm, { webOnly: p.webOnly ?? false });
    const account = await this.store.createAccount({
      username: p.username,
      role: p.role ?? 'user',
      ...creds,
      limits: p.limits ?? {},
    });
    await this.audit(actor, 'account.create', p.username, {
      role: account.role,
      ...(account.webOnly ? { webOnly: true } : {}),
    });
    return account;
  }

  list(q: { search?: string; offset?: number; limit?: number }): Promise<Page<Account>> {
    return this.store.listAccounts(q);
  }

  async get(username: string): Promise<Account> {
    const a = await this.store.getAccountSecrets(username);
    if (!a) throw new BrokerError('STORE_NOT_FOUND', `no account named ${username}`);
    // strip the secrets: callers outside authentication never see them
    const { passwordHash: _p, digestHa1: _d, digestRealm: _r, ...account } = a;
    return account;
  }

  async getById(id: number): Promise<Account> {
    const a = await this.store.getAccount(id);
    if (!a) throw new BrokerError('STORE_NOT_FOUND', `no account with id ${id}`);
    return a;
  }

  /** Changes the password: the argon2id hash and the DIGEST-MD5 secret together. A web-only account stays
   *  web-only (no DIGEST-MD5 secret is made) unless `webOnly` says otherwise: true makes a TSP account
   *  web-only (its secret is dropped), false gives a web-only account a secret for TSP. */
  async setPassword(
    actor: string,
    username: string,
    password: string,
    opts: { webOnly?: boolean } = {},
  ): Promise<void> {
    const a = await this.get(username);
    const webOnly = opts.webOnly ?? a.webOnly;
    await this.store.setPassword(a.id, await makeCredentials(username, password, this.realm, { webOnly }));
    await this.audit(actor, 'account.passwd', username, webOnly !== a.webOnly ? { webOnly } : null);
  }

  /** An account holder changing their own password must know the current one. */
  async changeOwnPassword(
    actor: string,
    username: string,
    currentPassword: string,
    newPassword: string,
  ): Promise<void> {
    const secrets = await this.store.getAccountSecrets(username);
    if (!secrets || !(await verifyPassword(secrets.passwordHash, currentPassword)))
      throw new BrokerError('AUTH_FAILED', 'the current password is wrong');
    await this.setPassword(actor, username, newPassword);
  }

  /** Disabling also ends the account's live tunnels (it could not authenticate again anyway). */
  async setDisabled(actor: string, username: string, disabled: boolean): Promise<Account> {
    const a = await this.get(username);
    await this.store.setDisabled(a.id, disabled);
    await this.audit(actor, disabled ? 'account.disable' : 'account.enable', username);
    if (disabled) await this.live?.endAccountTunnels(a.id, END_REASON.disable);
    else await this.live?.accountEnabled?.(a.id);
    return { ...a, disabled };
  }

  async setLimits(actor: string, username: string, limits: AccountLimits): Promise<Account> {
    const a = await this.get(username);
    await this.store.setLimits(a.id, limits);
    await this.audit(actor, 'account.limits', username, { ...limits });
    return { ...a, limits };
  }

  /** Ends the account's live tunnels (counters saved), then deletes it. */
  async delete(actor: string, username: string): Promise<void> {
    const a = await this.get(username);
    await this.live?.endAccountTunnels(a.id, END_REASON.delete);
    await this.store.deleteAccount(a.id);
    await this.audit(actor, 'account.delete', username);
    this.live?.accountDeleted?.(a.id);
  }
}
