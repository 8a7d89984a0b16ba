export * from './server/session.js';
