/**
 * The behaviors a thread can host: every `defineBehavior` exported by the modules named in the
 * node's config. Each host (the main thread and every worker) loads the same list, so a name
 * means the same code everywhere.
 */
import { InvalidRequestError, NotFoundError } from './errors.ts';
import { moduleSpecifier } from './module-specifier.ts';
import { type BehaviorDefinition, isBehaviorDefinition } from './registered-behavior.ts';

export class BehaviorRegistry {
  readonly modules: readonly string[];
  readonly #definitions: Map<string, BehaviorDefinition<unknown, unknown>>;

  private constructor(
    modules: readonly string[],
    definitions: Map<string, BehaviorDefinition<unknown, unknown>>,
  ) {
    this.modules = modules;
    this.#definitions = definitions;
  }

  static async load(modules: readonly string[]): Promise<BehaviorRegistry> {
    const definitions = new Map<string, BehaviorDefinition<unknown, unknown>>();
    const specifiers = modules.map(moduleSpecifier);
    for (const specifier of specifiers) {
      let loaded: Record<string, unknown>;
      try {
        loaded = (await import(specifier)) as Record<string, unknown>;
      } catch (error) {
        throw new InvalidRequestError(
          `cannot load behavior module ${specifier}: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
      for (const value of Object.values(loaded)) {
        if (!isBehaviorDefinition(value)) continue;
        const existing = definitions.get(value.name);
        if (existing !== undefined && existing !== value) {
          throw new InvalidRequestError(
            `behavior '${value.name}' is defined twice (in ${specifier} and before it)`,
          );
        }
        definitions.set(value.name, value);
      }
    }
    return new BehaviorRegistry(specifiers, definitions);
  }

  static empty(): BehaviorRegistry {
    return new BehaviorRegistry([], new Map());
  }

  get names(): string[] {
    return [...this.#definitions.keys()];
  }

  has(name: string): boolean {
    return this.#definitions.has(name);
  }

  get(name: string): BehaviorDefinition<unknown, unknown> {
    const definition = this.#definitions.get(name);
    if (definition === undefined) {
      const loaded = this.modules.length === 0 ? 'none (set behaviorModules)' : this.modules.join(', ');
      throw new NotFoundError(
        `behavior '${name}' is not registered; define it with defineBehavior in a module every host loads. ` +
          `Modules loaded: ${loaded}`,
      );
    }
    return definition;
  }
}
