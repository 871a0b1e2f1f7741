import postgres from 'postgres';

let created: Promise<string> | undefined;

/**
 * A database of this test process's own, cloned from the migrated template the test command
 * prepared: test files run in parallel, and each instance takes every shard of its database.
 */
export function testDatabaseUrl(): Promise<string> {
  return (created ??= (async () => {
    const template = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/gateway_test');
    const name = `${template.pathname.slice(1)}_${process.env.TEST_RUN_ID ?? 'solo'}_p${process.pid}`;
    const admin = postgres({
      host: template.hostname,
      port: Number(template.port || 5432),
      user: decodeURIComponent(template.username || 'postgres'),
      database: 'postgres',
      max: 1,
      onnotice: () => {},
    });
    try {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}"`);
      for (let attempt = 1; ; attempt += 1) {
        try {
          await admin.unsafe(`CREATE DATABASE "${name}" TEMPLATE "${template.pathname.slice(1)}"`);
          break;
        } catch (error) {
          // Two processes cloning one template at the same instant collide; a retry settles it.
          if (attempt >= 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
        }
      }
    } finally {
      await admin.end();
    }
    const url = new URL(template);
    url.pathname = `/${name}`;
    return url.toString();
  })());
}
