// A form's inputs for typed values (ParamSpec JSON, specs/api.yaml): a
// pipeline's params on its page, and the values a step waiting for approval
// asks for on a run's page. Checked here as the server checks them again.
import { el } from './dom.js';

// A param's label and input: a select for an enum, a checkbox for a bool, a
// number box with its min and max, else a text box; each with its default.
export function paramInput(p, prefix = 'param-') {
  const id = prefix + p.name;
  let input;
  if (p.enum) {
    input = el('select', { id, name: p.name }, p.enum.map((v) => el('option', { value: String(v), selected: v === p.default }, String(v))));
  } else if (p.type === 'bool') {
    input = el('input', { id, name: p.name, type: 'checkbox', checked: p.default === true });
  } else if (p.type === 'int' || p.type === 'float') {
    input = el('input', { id, name: p.name, type: 'number', step: p.type === 'int' ? '1' : 'any', min: p.min, max: p.max,
                          value: p.default === null ? '' : p.default, required: p.required });
  } else {
    input = el('input', { id, name: p.name, type: 'text', value: p.default === null ? '' : p.default, required: p.required });
  }
  const range = p.min !== undefined || p.max !== undefined ? ` ${p.min ?? '…'} to ${p.max ?? '…'}` : '';
  return el('div', {}, el('label', { for: id }, p.name, ' ', el('span', { class: 'hint' }, p.type + range + (p.description ? ' — ' + p.description : ''))), input);
}

// The form's values, typed; null and a message on the first bad one.
export function readParams(form, params) {
  const out = {};
  for (const p of params) {
    const input = form.elements[p.name];
    input.classList.remove('bad');
    let v;
    if (p.type === 'bool' && !p.enum) v = input.checked;
    else if (p.type === 'int' || p.type === 'float') {
      if (input.value.trim() === '') { if (p.required) return [null, p.name + ' is required', input]; continue; }
      v = Number(input.value);
      if (!Number.isFinite(v) || (p.type === 'int' && !Number.isInteger(v))) return [null, `${p.name} must be ${p.type === 'int' ? 'an integer' : 'a number'}`, input];
      if (p.min !== undefined && v < p.min) return [null, `${p.name} must be at least ${p.min}`, input];
      if (p.max !== undefined && v > p.max) return [null, `${p.name} must be at most ${p.max}`, input];
    } else {
      v = input.value;
      if (p.enum && (p.type === 'int' || p.type === 'float')) v = Number(v);
      if (p.enum && p.type === 'bool') v = v === 'true';
      if (v === '' && p.required) return [null, p.name + ' is required', input];
    }
    out[p.name] = v;
  }
  return [out, '', null];
}
