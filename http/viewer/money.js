// Money as the API carries it: an integer count of the currency's minor units. Formatted and parsed
// as text, never through floating point.

/** How many decimal places the currency has (2 for USD, 0 for JPY). */
export function minorDigits(currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** 1050 in USD → "10.50"; 123456789 → "1,234,567.89". */
export function formatAmount(minor, currency) {
  const digits = minorDigits(currency);
  const text = String(Math.abs(minor)).padStart(digits + 1, '0');
  const whole = text.slice(0, text.length - digits).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return (minor < 0 ? '-' : '') + whole + (digits > 0 ? `.${text.slice(text.length - digits)}` : '');
}

/** "10.50" in USD → {minor: 1050}; {error} when the text is not an amount of that currency. */
export function parseAmount(text, currency) {
  const digits = minorDigits(currency);
  const match = /^\s*(\d{1,13})(?:\.(\d*))?\s*$/.exec(text);
  if (!match) return { error: `Enter an amount such as ${digits > 0 ? `10.${'5'.padEnd(digits, '0')}` : '10'}.` };
  const fraction = match[2] || '';
  if (fraction.length > digits) return { error: `${currency} has ${digits} decimal places.` };
  const minor = Number(match[1] + fraction.padEnd(digits, '0'));
  if (!Number.isSafeInteger(minor) || minor <= 0) return { error: 'Enter an amount greater than zero.' };
  return { minor };
}

/** 1050 in USD → "10.50 USD": an amount as people read it, wherever it stands without a currency column. */
export function formatMoney(minor, currency) {
  return `${formatAmount(minor, currency)} ${currency}`;
}
