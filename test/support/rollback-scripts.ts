// Three scripts with down steps in schema mgttest, for the rollback tests.
import type { ScriptSpec } from '../../templates/script.js';

/** Script 1: a table. */
export const ONE: ScriptSpec = {
  id: 1, description: 'orders',
  sql: [{ seq: 1, body: 'CREATE TABLE mgttest.orders (id bigint PRIMARY KEY, total numeric NOT NULL)' }],
  down: [{ seq: 1, body: 'DROP TABLE mgttest.orders' }],
};
/** Script 2: a new table and a foreign key to it. */
export const TWO: ScriptSpec = {
  id: 2, description: 'customers',
  sql: [{ seq: 1, body: `CREATE TABLE mgttest.customers (id bigint PRIMARY KEY, name text NOT NULL);
                         INSERT INTO mgttest.customers VALUES (1, 'first')` }],
  down: [{ seq: 1, body: 'DROP TABLE mgttest.customers' }],
};
/** Script 3: a new column and an index on it (down steps in two rows, run in seq order). */
export const THREE: ScriptSpec = {
  id: 3, description: 'order customers',
  sql: [{ seq: 1, body: 'ALTER TABLE mgttest.orders ADD COLUMN customer_id bigint' },
        { seq: 2, body: 'CREATE INDEX orders_customer ON mgttest.orders (customer_id)' }],
  down: [{ seq: 1, body: 'DROP INDEX mgttest.orders_customer' },
         { seq: 2, body: 'ALTER TABLE mgttest.orders DROP COLUMN customer_id' }],
};
