/** @module store/kysely/settings: SettingsStore over Kysely (store/types.ts). */

import type { SettingsStore } from '../types.js';
import type { Runner } from './runner.js';

export function settingsStore(run: Runner): SettingsStore {
  return {
    getSetting(key) {
      return run.read('getSetting', async (db) => {
        const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
        return row?.value;
      });
    },

    /** Insert-or-nothing, then read back inside the same transaction: the first writer's value wins. */
    setSettingIfAbsent(key, value) {
      return run.write('setSettingIfAbsent', async (trx) => {
        await trx
          .insertInto('settings')
          .values({ key, value })
          .onConflict((oc) => oc.column('key').doNothing())
          .execute();
        const row = await trx.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirstOrThrow();
        return row.value;
      });
    },
  };
}
