/**
 * Turning any error into what the page shows: statespace errors keep their
 * stable `code` (CHECKPOINT_FILE_NOT_FOUND, NO_ADAPTER, ...) beside the message.
 */
import { StatespaceError } from '@statespace/core';

/** What the page shows for an error. */
export interface ShownError {
  /** The statespace error code, or undefined for other errors. */
  code?: string;
  message: string;
}

/** The code and message of an error (statespace errors are recognised across package copies). */
export function describeError(error: unknown): ShownError {
  if (StatespaceError.is(error)) return { code: error.code, message: error.message };
  if (error instanceof Error) {
    if (error.name === 'AbortError') return { code: 'ABORTED', message: 'stopped' };
    return { message: `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` };
  }
  return { message: String(error) };
}

/** Fills `box` with the error (code badge + message) and shows it. */
export function showError(box: HTMLElement, error: unknown, context?: string): void {
  const { code, message } = describeError(error);
  box.replaceChildren();
  box.hidden = false;
  box.classList.add('error');
  if (code) {
    const badge = document.createElement('code');
    badge.className = 'code';
    badge.dataset.testid = 'error-code';
    badge.textContent = code;
    box.append(badge, ' ');
  }
  const text = document.createElement('span');
  text.dataset.testid = 'error-message';
  text.textContent = context ? `${context}: ${message}` : message;
  box.append(text);
  console.error(error);
}

/** Hides an error box. */
export function clearError(box: HTMLElement): void {
  box.hidden = true;
  box.replaceChildren();
}
