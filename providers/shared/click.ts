/** How a notification's click should open: nothing given, a web URL, or an app deep link / intent URI. */
export type ClickTarget = { kind: 'app' } | { kind: 'url'; url: string } | { kind: 'intent'; uri: string };

/**
 * Classifies `notification.clickAction`. `http(s)://` opens a browser; any other URI (an app
 * scheme such as `app://orders/42`, or an `intent:` URI) is handed to the app as an intent URI:
 * Android's `Intent.parseUri` turns a plain URI into an ACTION_VIEW intent on that URI.
 */
export function clickTarget(clickAction: string | undefined): ClickTarget {
  if (!clickAction) return { kind: 'app' };
  if (/^https?:\/\//i.test(clickAction)) return { kind: 'url', url: clickAction };
  return { kind: 'intent', uri: clickAction };
}
