/**
 * How a module named in config becomes something `import()` takes, the same for behavior modules
 * and compute task modules: URLs pass through, paths (starting with `.` or `/`, or absolute) are
 * resolved from the working directory, anything else is a package name.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export function moduleSpecifier(entry: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(entry) && !path.isAbsolute(entry)) return entry;
  if (entry.startsWith('.') || entry.startsWith('/') || path.isAbsolute(entry)) {
    return pathToFileURL(path.resolve(entry)).href;
  }
  return entry;
}
