import type { CheckFn } from './types.js';

// Placeholder until the MySQL check lands (issue 4): fails with a clear message.
export const mysqlCheck: CheckFn = async () => ({ ok: false, message: 'mysql check not implemented yet' });
