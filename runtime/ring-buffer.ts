/**
 * A growable circular double-ended queue. Mailboxes and the dispatcher's run queue sit on it:
 * `Array.prototype.shift` is O(n) once arrays leave V8's fast path, this is O(1) both ends and
 * allocates nothing per element. The caller bounds it; it only grows by doubling.
 */
export class RingBuffer<T> {
  #items: (T | undefined)[];
  #head = 0;
  #length = 0;
  #mask: number;

  constructor(initialCapacity = 16) {
    let capacity = 4;
    while (capacity < initialCapacity) capacity *= 2;
    this.#items = new Array<T | undefined>(capacity);
    this.#mask = capacity - 1;
  }

  get length(): number {
    return this.#length;
  }

  push(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) & this.#mask] = item;
    this.#length++;
  }

  unshift(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#head = (this.#head - 1) & this.#mask;
    this.#items[this.#head] = item;
    this.#length++;
  }

  /** Removes and returns the first item, or `undefined` when empty. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const head = this.#head;
    const item = this.#items[head];
    this.#items[head] = undefined;
    this.#head = (head + 1) & this.#mask;
    this.#length--;
    return item;
  }

  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  /** Removes every item and returns them in order. */
  drain(): T[] {
    const out: T[] = [];
    while (this.#length > 0) out.push(this.shift() as T);
    return out;
  }

  #grow(): void {
    const old = this.#items;
    const next = new Array<T | undefined>(old.length * 2);
    for (let i = 0; i < this.#length; i++) next[i] = old[(this.#head + i) & this.#mask];
    this.#items = next;
    this.#head = 0;
    this.#mask = next.length - 1;
  }
}
