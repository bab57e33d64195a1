/**
 * Behaviors that can live on another thread (and, later, another node). Code cannot be sent
 * between threads, so such a behavior is defined by name in a module that every host loads, and
 * a spawn elsewhere sends only the name and the props.
 *
 *   export const counter = defineBehavior('counter', (props: { start: number }) => …);
 *   system.spawn(counter.with({ start: 0 }), { dispatcher: 'worker' });
 */
import { Behavior, BehaviorTag } from './behavior.ts';

const definitionBrand = Symbol.for('cloudless.behavior-definition');

export class BehaviorDefinition<TProps, TMsg> {
  readonly [definitionBrand] = true;
  readonly name: string;
  readonly factory: (props: TProps) => Behavior<TMsg>;

  constructor(name: string, factory: (props: TProps) => Behavior<TMsg>) {
    if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/.test(name)) {
      throw new RangeError(
        `a behavior name is 1-128 letters, digits, '.', '_', ':', '/' or '-', got '${String(name)}'`,
      );
    }
    if (typeof factory !== 'function') throw new TypeError(`behavior '${name}' needs a factory function`);
    this.name = name;
    this.factory = factory;
  }

  /** The behavior with these props; props cross threads, so keep them plain data (refs are fine). */
  with(props: TProps): RegisteredBehavior<TMsg> {
    return new RegisteredBehavior<TMsg>(this.name, props, this.factory as (props: unknown) => Behavior<TMsg>);
  }
}

export class RegisteredBehavior<TMsg> extends Behavior<TMsg> {
  readonly tag = BehaviorTag.registered;
  readonly definitionName: string;
  readonly props: unknown;
  readonly factory: (props: unknown) => Behavior<TMsg>;

  constructor(definitionName: string, props: unknown, factory: (props: unknown) => Behavior<TMsg>) {
    super();
    this.definitionName = definitionName;
    this.props = props;
    this.factory = factory;
  }
}

export function defineBehavior<TProps, TMsg>(
  name: string,
  factory: (props: TProps) => Behavior<TMsg>,
): BehaviorDefinition<TProps, TMsg> {
  return new BehaviorDefinition(name, factory);
}

export function isBehaviorDefinition(value: unknown): value is BehaviorDefinition<unknown, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[definitionBrand] === true
  );
}
