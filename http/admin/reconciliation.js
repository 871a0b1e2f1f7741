// Reconciliation: run on request (it replays every account), then "ok" or the differences found.

import { $, cell, el, fillTable, fullId, link, say } from './dom.js';

/** The context of the view on screen (admin.js makes one per view). */
let ctx;

/** `#/reconciliation`: nothing runs until the admin asks. */
export function showReconciliation(_route, context) {
  ctx = context;
  say('reconciliation-result', '');
  $('reconciliation-error').textContent = '';
  $('discrepancy-table').hidden = true;
}

async function run() {
  const button = $('reconcile');
  button.disabled = true;
  say('reconciliation-result', '');
  $('discrepancy-table').hidden = true;
  try {
    const report = await ctx.read('/api/v1/admin/reconciliation', 'reconciliation-error');
    if (!report) return;
    const checked = `${report.users} users and ${report.events} events checked`;
    $('reconciliation-result').dataset.ok = String(report.ok);
    if (report.ok) {
      say('reconciliation-result', `ok: ${checked}, no differences.`);
      return;
    }
    say('reconciliation-result', `${report.discrepancies.length} differences found (${checked}).`);
    const rows = report.discrepancies.map((d) =>
      el(
        'tr',
        {},
        cell(link(`#/users/${encodeURIComponent(d.user_id)}`, fullId(d.user_id))),
        cell(d.currency),
        cell(d.check),
        cell(d.journal, 'number'),
        cell(d.other, 'number'),
      ),
    );
    fillTable('discrepancy-table', rows);
    $('discrepancy-table').hidden = false;
  } finally {
    button.disabled = false;
  }
}

$('reconcile').addEventListener('click', () => void run());
