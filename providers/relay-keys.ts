/**
 * Top-level payload / data keys Relay writes into every channel's message, which the device SDK
 * reads: the message id (for receipts and opened events), the image and the click action.
 */
export const RELAY_ID_KEY = 'relay_id';
export const RELAY_IMAGE_KEY = 'relay_image';
export const RELAY_CLICK_KEY = 'relay_click';
