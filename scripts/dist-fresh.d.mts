/** True when dist/ was built after the last change to any source or build setting. */
export function distIsFresh(): boolean;
