/**
 * A typed name under which actors register with the receptionist. Two keys with the same id are
 * the same key; the type parameter is the message type the registered actors accept.
 */
export class ServiceKey<TMsg> {
  readonly id: string;
  declare readonly __message?: TMsg;

  private constructor(id: string) {
    this.id = id;
  }

  static create<TMsg>(id: string): ServiceKey<TMsg> {
    if (typeof id !== 'string' || id.length === 0 || id.length > 256) {
      throw new RangeError(
        `a service key id is a non-empty string of at most 256 characters, got '${String(id)}'`,
      );
    }
    return new ServiceKey<TMsg>(id);
  }

  toString(): string {
    return `ServiceKey(${this.id})`;
  }
}
