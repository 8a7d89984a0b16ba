/** @module admin/schemas: JSON Schemas of the REST API's bodies and replies. Fastify validates requests with
 *  them (ajv) and serialises replies through them (so a field not in the schema, such as a password hash,
 *  can never leak), and admin/openapi.ts publishes the same objects as the OpenAPI document. */

export const errorSchema = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', description: 'stable code from the error registry' },
    message: { type: 'string' },
  },
} as const;

const tunnelTypes = {
  type: 'array',
  items: { type: 'string', enum: ['v6v4', 'v6udpv4', 'v4v6'] },
  uniqueItems: true,
} as const;
const prefixLen = { type: 'integer', minimum: 16, maximum: 64 } as const;

export const limitsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { tunnelTypes, minPrefixLen: prefixLen, maxPrefixLen: prefixLen },
} as const;

export const accountSchema = {
  type: 'object',
  required: ['id', 'username', 'role', 'disabled', 'limits', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'integer' },
    username: { type: 'string' },
    role: { type: 'string', enum: ['admin', 'user'] },
    disabled: { type: 'boolean' },
    limits: limitsSchema,
    webOnly: { type: 'boolean', description: 'no DIGEST-MD5 secret: web UI and API only, no TSP login' },
    createdAt: { type: 'integer', description: 'Unix milliseconds' },
    updatedAt: { type: 'integer', description: 'Unix milliseconds' },
  },
} as const;

export const usernameParam = {
  type: 'object',
  required: ['username'],
  properties: { username: { type: 'string', minLength: 1, maxLength: 64 } },
} as const;

export const idParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1 } },
} as const;

export const password = { type: 'string', minLength: 8, maxLength: 255 } as const;

export const pageQuery = {
  offset: { type: 'integer', minimum: 0, default: 0 },
  limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
} as const;

const nullableInt = { type: ['integer', 'null'] } as const;

export const tunnelSchema = {
  type: 'object',
  required: ['id', 'type', 'state', 'clientIpv4', 'clientIpv6', 'serverIpv6', 'createdAt'],
  properties: {
    id: { type: 'integer' },
    accountId: nullableInt,
    username: { type: ['string', 'null'] },
    type: { type: 'string', enum: ['v6v4', 'v6udpv4', 'v4v6'] },
    transport: { type: 'string', enum: ['udp', 'tcp', 'static'] },
    clientIpv4: { type: 'string' },
    clientPort: { type: 'integer' },
    serverIpv4: { type: 'string' },
    serverIpv6: { type: 'string' },
    clientIpv6: { type: 'string' },
    prefix: { type: ['string', 'null'] },
    prefixLen: nullableInt,
    keepaliveInterval: { type: 'integer' },
    lifetimeS: { type: 'integer' },
    state: { type: 'string', enum: ['offered', 'established', 'ended'] },
    createdAt: { type: 'integer' },
    establishedAt: nullableInt,
    endedAt: nullableInt,
    endReason: { type: ['string', 'null'] },
    lastSeenAt: nullableInt,
    rxPackets: { type: 'integer' },
    rxBytes: { type: 'integer' },
    txPackets: { type: 'integer' },
    txBytes: { type: 'integer' },
    node: { type: ['string', 'null'], description: 'the node that carries (or carried) it' },
    live: { type: 'boolean' },
  },
} as const;

export const auditSchema = {
  type: 'object',
  required: ['id', 'at', 'actor', 'action'],
  properties: {
    id: { type: 'integer' },
    at: { type: 'integer' },
    actor: { type: 'string' },
    action: { type: 'string' },
    target: { type: ['string', 'null'] },
    detail: { type: ['object', 'null'], additionalProperties: true },
  },
} as const;

export const tokenSchema = {
  type: 'object',
  required: ['name', 'createdBy', 'createdAt'],
  properties: {
    name: { type: 'string' },
    createdBy: { type: 'string' },
    createdAt: { type: 'integer' },
    lastUsedAt: { ...nullableInt, description: 'last request made with it (recorded at most once a minute)' },
    expiresAt: { ...nullableInt, description: 'refused from this time on (Unix milliseconds); null: never' },
  },
} as const;

export function pageOf(item: object): object {
  return {
    type: 'object',
    required: ['items', 'total'],
    properties: { items: { type: 'array', items: item }, total: { type: 'integer' } },
  };
}

/** Replies every authenticated route can give besides its success. */
export const commonErrors = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
} as const;

/** The reply of a write that returns nothing. */
export const noContent = { 204: { type: 'null', description: 'done' } } as const;

/** A tunnel meter sample (admin/traffic.ts): the counters' totals at `at`. */
export const sampleSchema = {
  type: 'object',
  properties: { at: { type: 'integer' }, rxBytes: { type: 'integer' }, txBytes: { type: 'integer' } },
} as const;

export const rateSchema = {
  type: 'object',
  description: 'bytes per second over the interval ending at `at`; null: no data (the broker was not running)',
  properties: { at: { type: 'integer' }, rx: { type: ['number', 'null'] }, tx: { type: ['number', 'null'] } },
} as const;
