/**
 * Logging: winston, JSON lines on stderr, with `component` and `node` on every line. Levels are
 * debug, info, warn, error; `silent` turns logging off (specs use it).
 */
import winston from 'winston';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export const logLevels: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

export function createLogger(init: { level: LogLevel; node: string; component: string }): winston.Logger {
  if (!logLevels.includes(init.level)) {
    throw new RangeError(`log level must be one of ${logLevels.join(', ')}, got '${String(init.level)}'`);
  }
  return winston.createLogger({
    level: init.level === 'silent' ? 'error' : init.level,
    silent: init.level === 'silent',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { component: init.component, node: init.node },
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}
