import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The first ```ts block after the given heading. */
async function codeUnder(heading: string): Promise<string> {
  const readme = await readFile(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf(heading));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (match?.[1] === undefined) throw new Error(`README has no ts block under ${heading}`);
  return match[1];
}

describe('README', () => {
  it('runs the embedding example as written and prints what the README says', async () => {
    const code = await codeUnder('## Embedding');
    // Inside the repository so that `from 'cloudless'` resolves through the package's exports.
    const dir = path.join(root, '.spec-tmp');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `readme-example-${process.pid}.ts`);
    await writeFile(file, code);
    try {
      const { stdout } = await run(process.execPath, ['--conditions=development', file], { timeout: 20_000 });
      expect(stdout.trim().split('\n')).to.deep.equal(['total: 5', 'after restart: 0']);
    } finally {
      await rm(file, { force: true });
    }
  });

  it('documents every npm script in package.json', async () => {
    const readme = await readFile(path.join(root, 'README.md'), 'utf8');
    const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    for (const script of Object.keys(pkg.scripts)) {
      const documented = script === 'start' || script === 'test' ? `npm ${script}` : `npm run ${script}`;
      expect(readme, `README mentions ${documented}`).to.include(documented);
    }
  });
});
