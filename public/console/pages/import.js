// The Import page: a catalog file uploaded with progress, imported all or nothing.
import { ApiError, csrf, failed, h, status, statusRegion } from '../lib.js';

export function importPage(main) {
  const file = h('input', {
    id: 'import-file',
    type: 'file',
    name: 'catalog',
    accept: '.csv,.json,text/csv,application/json',
    required: true,
  });
  const progress = h('progress', { max: 100, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const note = statusRegion();
  note.id = 'import-result';
  const button = h('button', { type: 'submit' }, 'Import');
  const form = h(
    'form',
    { class: 'card', id: 'import-form' },
    h('input', { type: 'hidden', name: '_csrf', value: csrf }),
    h('label', { for: 'import-file' }, 'Catalog file (CSV or JSON)'),
    file,
    h(
      'p',
      { class: 'hint' },
      'Fields: sku, name, price (12.50) or price_minor (1250), currency, stock, and optionally track_stock, description, active. All rows or none: if any line fails, nothing changes and every failing line is listed.',
    ),
    h('div', { class: 'row' }, button),
    progress,
  );

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = file.files?.[0];
    if (!chosen) return status(note, 'problem', 'Choose a file first.');
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    status(note, '', `Uploading ${chosen.name}…`);
    // XMLHttpRequest, not fetch: only it reports upload progress.
    const xhr = new XMLHttpRequest();
    xhr.open('POST', 'api/import');
    xhr.setRequestHeader('X-CSRF-Token', csrf);
    xhr.setRequestHeader('Content-Type', /\.json$/i.test(chosen.name) ? 'application/json' : 'text/csv');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
    };
    xhr.upload.onload = () => {
      progress.removeAttribute('value');
      status(note, '', `Uploaded; importing ${chosen.name}…`);
    };
    xhr.onload = () => {
      button.disabled = false;
      progress.hidden = true;
      let data = {};
      try {
        data = JSON.parse(xhr.responseText);
      } catch {}
      if (xhr.status === 401) return location.reload();
      if (xhr.status >= 400) return failed(note, new ApiError(xhr.status, data));
      status(
        note,
        'success',
        `Imported ${data.rows} products from ${chosen.name}: ${data.created} new, ${data.updated} updated.`,
      );
    };
    xhr.onerror = () => {
      button.disabled = false;
      progress.hidden = true;
      status(note, 'problem', 'The upload failed: the server could not be reached.');
    };
    xhr.send(chosen);
  });

  main.replaceChildren(h('h1', {}, 'Import'), form, note);
  return null;
}
