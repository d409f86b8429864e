/**
 * A queue between producers that push (subscriptions) and one consumer that awaits (a streaming
 * handler). Items marked droppable (live positions) are dropped, oldest first, when more than
 * `maxDroppable` of them wait, so a slow reader cannot make it grow without bound; others are
 * never dropped.
 */
export class Inbox<T> {
  private readonly items: { item: T; droppable: boolean }[] = [];
  private droppable = 0;
  private wake: (() => void) | undefined;

  constructor(private readonly maxDroppable: number) {}

  push(item: T, droppable = false): void {
    this.items.push({ item, droppable });
    if (droppable && ++this.droppable > this.maxDroppable) {
      const oldest = this.items.findIndex((i) => i.droppable);
      this.items.splice(oldest, 1);
      this.droppable--;
    }
    this.wake?.();
  }

  /** The next item; undefined once `signal` is aborted. */
  async next(signal: AbortSignal): Promise<T | undefined> {
    while (this.items.length === 0) {
      if (signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
    if (signal.aborted) return undefined;
    const first = this.items.shift();
    if (first?.droppable) this.droppable--;
    return first?.item;
  }
}
