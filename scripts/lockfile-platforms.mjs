#!/usr/bin/env node
// Adds lockfile entries for the platform builds of biome and turbo that `npm install` leaves out
// when the registry mirror in use lacks them; `npm ci` refuses a lockfile without them.
// Run after `npm install` changes package-lock.json: node scripts/lockfile-platforms.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const PLATFORM = {
  android: { os: ['android'] },
  darwin: { os: ['darwin'] },
  linux: { os: ['linux'] },
  win32: { os: ['win32'] },
  windows: { os: ['win32'] },
};
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const pkgs = lock.packages;
let added = 0;
for (const parent of ['node_modules/@biomejs/biome', 'node_modules/turbo']) {
  const opt = pkgs[parent]?.optionalDependencies ?? {};
  for (const [name, version] of Object.entries(opt)) {
    const at = `node_modules/${name}`;
    if (pkgs[at]) continue;
    const tail = name.split('/')[1];
    const parts = tail.replace(/^cli-/, '').split('-');
    const os = PLATFORM[parts[0]]?.os ?? [parts[0]];
    const arch = parts[1] === '64' ? 'x64' : parts[1];
    const entry = {
      version,
      resolved: `https://registry.npmjs.org/${name}/-/${tail}-${version}.tgz`,
      cpu: [arch],
      dev: true,
      optional: true,
      os,
    };
    if (parts[0] === 'linux') entry.libc = [parts[2] === 'musl' ? 'musl' : 'glibc'];
    pkgs[at] = entry;
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
);
writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lockfile-platforms: ${added} entries added`);
