/**
 * A minimal typed event emitter: no Node `events` import, so the SDK runs unchanged in browsers
 * and React Native. Unlike Node's EventEmitter an unhandled 'error' event is not thrown.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (arg: any) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly listeners = new Map<keyof Events, Listener[]>();

  on<K extends keyof Events>(event: K, fn: (arg: Events[K]) => void): this {
    const list = this.listeners.get(event);
    if (list) list.push(fn);
    else this.listeners.set(event, [fn]);
    return this;
  }

  once<K extends keyof Events>(event: K, fn: (arg: Events[K]) => void): this {
    const wrapper = (arg: Events[K]) => {
      this.off(event, wrapper);
      fn(arg);
    };
    return this.on(event, wrapper);
  }

  off<K extends keyof Events>(event: K, fn: (arg: Events[K]) => void): this {
    const list = this.listeners.get(event);
    if (list) {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  /** Calls every listener; a throwing listener is reported on 'error' (or swallowed) and never breaks the SDK. */
  protected emit<K extends keyof Events>(event: K, arg: Events[K]): void {
    const list = this.listeners.get(event);
    if (!list || list.length === 0) return;
    for (const fn of [...list]) {
      try {
        fn(arg);
      } catch (err) {
        if (event !== 'error') this.emit('error' as K, err as Events[K]);
      }
    }
  }
}
