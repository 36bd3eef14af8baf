/* Offline verification in the browser: the same decisions as the server's offline mode
   (verification/verdicts.py with verification/offline.py), from a signed trust list.

   What it decides: the code parses; its signature (Ed25519 over the RFC 8785 canonical JSON of
   {"t": "unit"|"batch", "gtin", "lot", "serial"?, "exp"?}) verifies under a key the trust list
   names; that key is certified for the GTIN's company prefix; the key is not revoked (else
   suspect); the batch is not among the trust list's recalls; the expiry has not passed. What it
   cannot know is said in the notes: recalls and key revocations since the trust list was issued,
   and cloned serials. A key the list does not name may be newer than the list: its codes are
   'unverifiable' (UNSIGNED_CODE, with the list's time), never 'counterfeit'.

   Signatures use WebCrypto Ed25519 where the browser has it (Chromium 137+, Safari 17+, Firefox
   129+); elsewhere the vendored @noble/ed25519 (static/js/vendor/, loaded with import() only when
   needed, SHA-512 from WebCrypto). Which one is probed once, on the RFC 8032 test vector
   (`ed25519Backend()` says which); a browser with neither cannot load the trust list
   (`supportsEd25519()` says so beforehand) and checks nothing offline.

   An ES module, no build step; its one optional dependency is the vendored module above. */

/* ------------------------------------------------------------------ encodings */

/** RFC 8785 (JCS) canonical JSON: object keys sorted by UTF-16 code units, no whitespace,
    strings and numbers serialised as ECMAScript's JSON.stringify does. */
export function canonicalJSON(value) {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !isFinite(value)) { throw new TypeError('JCS has no NaN or Infinity'); }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) { return '[' + value.map(canonicalJSON).join(',') + ']'; }
  var keys = Object.keys(value).filter(function (k) { return value[k] !== undefined; }).sort();
  return '{' + keys.map(function (k) { return JSON.stringify(k) + ':' + canonicalJSON(value[k]); }).join(',') + '}';
}

export function utf8(text) { return new TextEncoder().encode(text); }

/** base64url without padding -> bytes; null when the text is not that. */
export function b64urlDecode(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) { return null; }
  var b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  b64 += '===='.slice(0, (4 - b64.length % 4) % 4);
  var bin = atob(b64);
  var out = new Uint8Array(bin.length);
  for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
  return out;
}

export function b64urlEncode(bytes) {
  var bin = '';
  for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Percent-decoding as Python's urllib.parse.unquote does it: %XX runs are UTF-8 (invalid
    sequences become U+FFFD), a stray '%' stays as it is; `plus` also turns '+' into a space. */
export function percentDecode(text, plus) {
  if (plus) { text = text.replace(/\+/g, ' '); }
  return text.replace(/(%[0-9A-Fa-f]{2})+/g, function (run) {
    var bytes = new Uint8Array(run.length / 3);
    for (var i = 0; i < bytes.length; i++) { bytes[i] = parseInt(run.substr(i * 3 + 1, 2), 16); }
    return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  });
}

/* ------------------------------------------------------------------ parsing */

export class MalformedCode extends Error {
  constructor(reason, detail) { super(detail); this.reason = reason; this.detail = detail; }
}

function malformed(detail) { return new MalformedCode('MALFORMED_CODE', detail); }

var GS = '\x1d';
var URI_CHARS = /^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$/;
/* GS1 AI encodable character set 82 (lots and serials). */
var CSET82 = /^[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+$/;
/* The AIs this verifier understands; others make the code unreadable here (the server knows more). */
var AIS = {
  '01': { fixed: 14 }, '10': { max: 20 }, '21': { max: 20 }, '17': { fixed: 6 },
  '11': { fixed: 6 }, '13': { fixed: 6 }, '15': { fixed: 6 }, '16': { fixed: 6 }, '22': { max: 20 }
};

export function gs1CheckDigit(digits) {
  var sum = 0;
  for (var i = digits.length - 1, w = 3; i >= 0; i--, w = 4 - w) { sum += Number(digits[i]) * w; }
  return String((10 - sum % 10) % 10);
}

/** GS1's sliding century window (verification/gs1/dictionary.py::century_for). */
export function centuryFor(yy, today) {
  var current = today.getFullYear();
  var century = Math.floor(current / 100), diff = yy - current % 100;
  if (diff >= 51) { century -= 1; } else if (diff <= -50) { century += 1; }
  return century * 100 + yy;
}

function expiryDate(raw, today) {
  var year = centuryFor(Number(raw.slice(0, 2)), today);
  var month = Number(raw.slice(2, 4)), day = Number(raw.slice(4, 6));
  if (day === 0) { day = new Date(year, month, 0).getDate(); }
  return { year: year, month: month, day: day };
}

function isoDate(d) {
  return String(d.year).padStart(4, '0') + '-' + String(d.month).padStart(2, '0') + '-' + String(d.day).padStart(2, '0');
}

function validate(ai, value) {
  if (ai === '01') {
    if (!/^\d{14}$/.test(value)) { throw malformed('GTIN ' + value + ' is not 14 digits'); }
    if (gs1CheckDigit(value.slice(0, 13)) !== value[13]) {
      throw new MalformedCode('BAD_CHECK_DIGIT', 'GTIN ' + value + ' has check digit ' + value[13] +
        ', expected ' + gs1CheckDigit(value.slice(0, 13)));
    }
  } else if (AIS[ai].fixed === 6) {
    if (!/^\d{6}$/.test(value)) { throw malformed('AI (' + ai + ') is not a YYMMDD date'); }
    var month = Number(value.slice(2, 4)), day = Number(value.slice(4, 6));
    var days = new Date(2000 + Number(value.slice(0, 2)), month, 0).getDate();
    if (month < 1 || month > 12 || day > days) { throw malformed('AI (' + ai + ') is not a valid date: ' + value); }
  } else if (value.length > AIS[ai].max || !CSET82.test(value)) {
    throw malformed('AI (' + ai + ') value ' + JSON.stringify(value) + ' is not valid');
  }
}

function build(kind, values, extra, today) {
  Object.keys(values).forEach(function (ai) { validate(ai, values[ai]); });
  if ((values['10'] || values['21']) && !values['01']) { throw malformed('a lot or serial needs a GTIN'); }
  var raw = values['17'] || null;
  return Object.assign({
    kind: kind, gtin: values['01'] || null, lot: values['10'] || null, serial: values['21'] || null,
    expiryRaw: raw, expiry: raw ? isoDate(expiryDate(raw, today)) : null, signature: null, host: null, notes: []
  }, extra || {});
}

function parseDigitalLink(body, today, notes) {
  var scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(body)[1];
  if (['http', 'https', 'HTTP', 'HTTPS'].indexOf(scheme) < 0) {
    throw malformed('not a GS1 Digital Link: scheme ' + JSON.stringify(scheme) + ' is not http or https');
  }
  if (scheme === 'HTTP' || scheme === 'HTTPS') { notes.push('UPPERCASE_URI'); }
  if (!URI_CHARS.test(body)) { throw malformed('URI contains illegal characters'); }
  var rest = body.slice(scheme.length + 3);
  var slash = rest.indexOf('/');
  if (slash < 1) { throw malformed('URI has no domain or no path info'); }
  var host = rest.slice(0, slash);
  var path = rest.slice(slash).split('#')[0];
  var q = path.indexOf('?');
  var query = q >= 0 ? path.slice(q + 1) : null;
  if (q >= 0) { path = path.slice(0, q); }
  var parts = path.split('/');
  var start = -1;
  for (var i = parts.length - 2; i >= 1; i -= 2) {
    if (parts[i] === '01') { start = i; break; }
    if (!AIS[parts[i]]) { break; }
  }
  if (start < 0) { throw malformed('no GS1 DL primary key (01) found in path info'); }
  var values = {}, order = [];
  for (var j = start; j < parts.length; j += 2) {
    var ai = parts[j], raw = parts[j + 1];
    if (!raw) { throw malformed('empty value for AI (' + ai + ') in path'); }
    var value = percentDecode(raw, false);
    if (ai === '01' && /^\d+$/.test(value) && [8, 12, 13].indexOf(value.length) >= 0) {
      value = value.padStart(14, '0');
      notes.push('ZERO_SUPPRESSED_GTIN');
    }
    order.push(ai);
    values[ai] = value;
  }
  var allowed = ['01', '22', '10', '21'];
  var last = -1;
  order.forEach(function (ai) {
    var at = allowed.indexOf(ai);
    if (at <= last) { throw malformed('invalid key-qualifier sequence in path info: /' + order.join('/')); }
    last = at;
  });
  var signature = null;
  (query === null ? [] : query.split('&')).forEach(function (param) {
    if (!param || param.indexOf('=') < 0) { return; }
    var key = param.slice(0, param.indexOf('=')), rawValue = param.slice(param.indexOf('=') + 1);
    if (key === 's') {
      if (signature !== null) { throw malformed("duplicate signature parameter 's' in DL URI"); }
      signature = rawValue;
      return;
    }
    if (!/^\d+$/.test(key)) { return; }
    if (!AIS[key] || allowed.indexOf(key) >= 0) { throw malformed('AI (' + key + ') is not understood offline in the query'); }
    if (!rawValue) { throw malformed('empty value for AI (' + key + ') in query parameters'); }
    if (key in values) { throw malformed('duplicate AI (' + key + ') in DL URI'); }
    values[key] = percentDecode(rawValue, true);
  });
  return build('digital_link', values, { signature: signature, host: host.toLowerCase(), notes: notes }, today);
}

function parseElementString(body, today, notes, bracketed) {
  var values = {};
  function put(ai, value) {
    if (!AIS[ai]) { throw malformed('AI (' + ai + ') is not understood offline'); }
    if (!value) { throw malformed('AI (' + ai + ') has an empty value'); }
    if (ai in values && values[ai] !== value) { throw malformed('AI (' + ai + ') repeated with different values'); }
    values[ai] = value;
  }
  if (bracketed) {
    var re = /\((\d{2,4})\)([^(]*)/g, m, seen = 0;
    while ((m = re.exec(body)) !== null) {
      if (m.index !== seen) { throw malformed('malformed AI at ' + JSON.stringify(body.slice(seen, seen + 6))); }
      put(m[1], m[2].split(GS).join(''));
      seen = re.lastIndex;
    }
    if (seen !== body.length) { throw malformed('malformed AI at ' + JSON.stringify(body.slice(seen, seen + 6))); }
  } else {
    var pos = 0;
    while (pos < body.length) {
      if (body[pos] === GS) { pos++; continue; }
      var ai = body.slice(pos, pos + 2), spec = AIS[ai];
      if (!spec) { throw malformed('no AI understood offline at ' + JSON.stringify(body.slice(pos, pos + 6))); }
      var value;
      if (spec.fixed) {
        value = body.slice(pos + 2, pos + 2 + spec.fixed);
        if (value.length < spec.fixed || value.indexOf(GS) >= 0) { throw malformed('AI (' + ai + ') value too short'); }
        pos += 2 + spec.fixed;
      } else {
        var end = body.indexOf(GS, pos + 2);
        end = end < 0 ? body.length : end;
        value = body.slice(pos + 2, end);
        pos = end;
      }
      put(ai, value);
    }
  }
  if (!Object.keys(values).length) { throw malformed('empty GS1 data'); }
  return build('element_string', values, { notes: notes }, today);
}

/** Parse a scanned or typed code (a subset of verification/parsing.py: GS1 Digital Links on any
    host, element strings with AIs 01, 10, 17, 21, 11, 13, 15, 16, 22, and plain GTINs); throws
    MalformedCode. */
export function parseCode(text, today) {
  today = today || new Date();
  var notes = [];
  var body = String(text).replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
  if (body !== text) { notes.push('WHITESPACE_TRIMMED'); }
  if (!body) { throw malformed('the code is empty'); }
  var symbology = null;
  var sym = /^\](?:[Cc]1|[Ee][0-4]|[Dd]2|[Qq]3|[Ee]e)/.exec(body);
  if (sym) { symbology = sym[0]; body = body.slice(3); }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(body)) { return parseDigitalLink(body, today, notes); }
  if (body[0] === '(') { return parseElementString(body, today, notes, true); }
  if (/^\d+$/.test(body) && [8, 12, 13, 14].indexOf(body.length) >= 0 && (!symbology || symbology[1] === 'E')) {
    var gtin = body.padStart(14, '0');
    validate('01', gtin);
    return { kind: 'gtin', gtin: gtin, lot: null, serial: null, expiryRaw: null, expiry: null, signature: null,
             host: null, notes: notes };
  }
  if (/^\x1d*\d\d/.test(body)) { return parseElementString(body, today, notes, false); }
  throw malformed('not a product code: neither a GS1 Digital Link, a GS1 element string nor a GTIN');
}

/* ------------------------------------------------------------------ trust list */

export class TrustListError extends Error {}

var ED25519 = { name: 'Ed25519' };
var NOBLE_URL = './vendor/noble-ed25519.js';  /* resolved against this module's URL */

/* RFC 8032, 7.1, test 1: public key, and the signature of the empty message. */
var RFC8032_TEST_KEY = '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo';
var RFC8032_TEST_SIG = '5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc-bRr0lv18FlbviRlUUFDjnoQCw';

var backendPromise = null;

async function probeWebCrypto() {
  try {
    var key = await crypto.subtle.importKey('raw', b64urlDecode(RFC8032_TEST_KEY), ED25519, false, ['verify']);
    return (await crypto.subtle.verify(ED25519, key, b64urlDecode(RFC8032_TEST_SIG), new Uint8Array(0))) === true;
  } catch (e) {
    return false;
  }
}

async function loadNoble() {
  var ed = await import(NOBLE_URL);
  var ok = await ed.verifyAsync(b64urlDecode(RFC8032_TEST_SIG), new Uint8Array(0), b64urlDecode(RFC8032_TEST_KEY),
                                { zip215: false });
  if (ok !== true) { throw new Error('the vendored Ed25519 fails the RFC 8032 test vector'); }
  return ed;
}

/* {name: 'webcrypto'} or {name: 'noble', ed} or {name: null}; probed once per page. A failed
   import() of the fallback (no network, not cached yet) is not remembered: the next call tries again. */
function backend() {
  if (!backendPromise) {
    backendPromise = probeWebCrypto().then(function (ok) {
      if (ok) { return { name: 'webcrypto' }; }
      return loadNoble().then(function (ed) { return { name: 'noble', ed: ed }; }, function () {
        backendPromise = null;
        return { name: null };
      });
    });
  }
  return backendPromise;
}

/** Which Ed25519 implementation this page verifies with: 'webcrypto', 'noble' (the vendored
    fallback) or null (neither works here). */
export async function ed25519Backend() { return (await backend()).name; }

/** True when this browser can verify Ed25519 signatures (with WebCrypto or the vendored fallback). */
export async function supportsEd25519() {
  try {
    await importKey(b64urlDecode(RFC8032_TEST_KEY));
    return true;
  } catch (e) {
    return false;
  }
}

/* A verification key: a CryptoKey with WebCrypto, {raw} (a copy of the 32 bytes) with the fallback. */
async function importKey(raw) {
  var impl = await backend();
  if (impl.name === 'webcrypto') { return crypto.subtle.importKey('raw', raw, ED25519, false, ['verify']); }
  if (impl.name === 'noble') {
    if (!(raw instanceof Uint8Array) || raw.length !== 32) { throw new TypeError('an Ed25519 public key is 32 bytes'); }
    return Object.freeze({ type: 'public', algorithm: ED25519, raw: raw.slice() });
  }
  throw new Error('this browser cannot verify Ed25519 signatures');
}

export async function kidFor(raw) {
  var digest = new Uint8Array(await crypto.subtle.digest('SHA-256', raw));
  return b64urlEncode(digest.slice(0, 6));
}

async function verifyBytes(key, signatureB64, data) {
  var sig = typeof signatureB64 === 'string' && signatureB64.indexOf('=') < 0 ? b64urlDecode(signatureB64) : null;
  if (!sig) { return 'signature is not base64url'; }
  if (sig.length !== 64) { return 'an Ed25519 signature is 64 bytes'; }
  try {
    var impl = await backend(), ok;
    if (impl.name === 'noble' && key && key.raw) {
      /* zip215: false is RFC 8032 / FIPS 186-5 verification, as the server's (OpenSSL) is. */
      ok = await impl.ed.verifyAsync(sig, data, key.raw, { zip215: false });
    } else {
      ok = await crypto.subtle.verify(ED25519, key, sig, data);
    }
    return ok === true ? null : 'signature does not verify';
  } catch (e) {
    return 'signature does not verify';
  }
}

/** Check a trust list's signature (against `pinnedAuthorityKey` when given) and load its keys and
    recalls: `{issuedAt, authorityKid, keys: Map(kid -> {kid, key, producerId, producerName, prefixes,
    status, compromisedAt}), recalls: Map('gtin lot' -> reason)}`. Throws TrustListError. */
export async function loadTrustList(doc, pinnedAuthorityKey) {
  if (!doc || typeof doc !== 'object' || doc.t !== 'trust-list') { throw new TrustListError('not a trust list'); }
  try {
    var authorityRaw = b64urlDecode(pinnedAuthorityKey || doc.authority.public_key);
    if (!authorityRaw || authorityRaw.length !== 32) { throw new TrustListError('the authority key is not 32 bytes'); }
    if (!pinnedAuthorityKey && (await kidFor(authorityRaw)) !== doc.authority.kid) {
      throw new TrustListError("the trust list's authority kid does not match its key");
    }
    if (!doc.sig || doc.sig.kid !== (await kidFor(authorityRaw))) {
      throw new TrustListError('the trust list is not signed by the authority key');
    }
    var unsigned = Object.assign({}, doc);
    delete unsigned.sig;
    var problem = await verifyBytes(await importKey(authorityRaw), doc.sig.value, utf8(canonicalJSON(unsigned)));
    if (problem) { throw new TrustListError("the trust list's signature does not verify: " + problem); }
    var keys = new Map();
    for (var producer of doc.producers) {
      for (var k of producer.keys) {
        var raw = b64urlDecode(k.public_key);
        if (!raw || raw.length !== 32 || (await kidFor(raw)) !== k.kid) {
          throw new TrustListError('key ' + k.kid + ' does not match its public key');
        }
        keys.set(k.kid, {
          kid: k.kid, key: await importKey(raw), producerId: producer.id, producerName: producer.name,
          prefixes: (k.gs1_prefixes && k.gs1_prefixes.length ? k.gs1_prefixes : producer.gs1_prefixes).slice(),
          status: k.status, compromisedAt: k.compromised_at || null
        });
      }
    }
    var recalls = new Map();
    for (var recall of (doc.recalls || [])) {  /* lists issued before recalls were carried have none */
      if (typeof recall.gtin !== 'string' || typeof recall.lot !== 'string' || typeof recall.reason !== 'string') {
        throw new TrustListError('a recall in the trust list is not {gtin, lot, reason}');
      }
      recalls.set(recall.gtin + ' ' + recall.lot, recall.reason);
    }
    return { issuedAt: doc.issued_at, authorityKid: doc.authority.kid, keys: keys, recalls: recalls };
  } catch (e) {
    if (e instanceof TrustListError) { throw e; }
    throw new TrustListError('the trust list is malformed: ' + (e && e.message));
  }
}

/* ------------------------------------------------------------------ verdicts */

export var VERDICT_ORDER = ['counterfeit', 'suspect', 'recalled', 'expired', 'unknown', 'genuine', 'unverifiable', 'unreadable'];
export var VERDICT_OF = {
  SIGNATURE_INVALID: 'counterfeit', KEY_UNKNOWN: 'counterfeit', PREFIX_NOT_LICENSED: 'counterfeit',
  SERIAL_CLONED: 'suspect', KEY_REVOKED: 'suspect', DATA_MISMATCH: 'suspect', BATCH_RECALLED: 'recalled',
  EXPIRED: 'expired', BATCH_UNKNOWN: 'unknown', SERIAL_UNKNOWN: 'unknown', GTIN_UNKNOWN: 'unknown',
  PLAIN_GTIN: 'unverifiable', UNSIGNED_CODE: 'unverifiable', NO_CODE_FOUND: 'unreadable',
  MALFORMED_CODE: 'unreadable', BAD_CHECK_DIGIT: 'unreadable'
};

export function mostSerious(verdicts) {
  if (!verdicts.length) { return 'unreadable'; }
  return verdicts.reduce(function (a, b) { return VERDICT_ORDER.indexOf(b) < VERDICT_ORDER.indexOf(a) ? b : a; });
}

export function gtinCovered(gtin14, prefixes) {
  var company = gtin14.slice(1);
  return prefixes.some(function (p) { return company.indexOf(p) === 0; });
}

function signedPayload(code) {
  var payload = { t: code.serial !== null ? 'unit' : 'batch', gtin: code.gtin, lot: code.lot };
  if (code.serial !== null) { payload.serial = code.serial; }
  if (code.expiryRaw !== null) { payload.exp = code.expiryRaw; }
  return payload;
}

function todayIso(today) {
  return isoDate({ year: today.getFullYear(), month: today.getMonth() + 1, day: today.getDate() });
}

/** Verify a decoded text against a loaded trust list, as the server's offline mode does. Answers
    the API's verification JSON shape: {verdict, reasons: [{code, detail}], notes: [{code, detail}],
    code: {gtin, lot, serial, expiry, kind, signed}, product, producer, batch, scans, offline: true,
    trust_list_issued_at}. `today` (a Date) is the reference for expiry. */
export async function verifyOffline(text, trustList, today) {
  today = today || new Date();
  var found = [];
  function add(code, detail) { found.push({ code: code, detail: detail || '' }); }
  function result(code, fallback, producer) {
    var decisive = found.filter(function (r) { return r.code in VERDICT_OF; });
    var verdict = decisive.length ? mostSerious(decisive.map(function (r) { return VERDICT_OF[r.code]; })) : fallback;
    var clean = function (r) { return r.detail ? { code: r.code, detail: r.detail } : { code: r.code }; };
    return {
      verdict: verdict,
      reasons: decisive.map(clean),
      notes: found.filter(function (r) { return !(r.code in VERDICT_OF); }).map(clean),
      code: code ? { gtin: code.gtin, lot: code.lot, serial: code.serial, expiry: code.expiry, kind: code.kind,
                     signed: code.signature !== null } : null,
      product: null, producer: producer || null, batch: null, scans: null, offline: true,
      trust_list_issued_at: trustList ? trustList.issuedAt : null
    };
  }
  var code;
  try {
    code = parseCode(text, today);
  } catch (e) {
    if (!(e instanceof MalformedCode)) { throw e; }
    add(e.reason, e.detail);
    return result(null, 'unreadable');
  }
  code.notes.forEach(function (note) { add('SCANNER_SLIP', note); });
  if (code.gtin === null) { add('MALFORMED_CODE', 'the code carries no GTIN'); return result(code, 'unreadable'); }
  if (code.lot === null) { add('PLAIN_GTIN'); return result(code, 'unverifiable'); }
  var key = null;
  if (code.signature !== null) {
    key = await checkSignature(code, trustList, add);
    if (found.some(function (r) { return VERDICT_OF[r.code] === 'counterfeit'; })) { return result(code, 'counterfeit'); }
  }
  if (code.expiry !== null && code.expiry < todayIso(today)) { add('EXPIRED', 'expiry ' + code.expiry + ' has passed'); }
  var recalled = trustList && trustList.recalls ? trustList.recalls.get(code.gtin + ' ' + code.lot) : undefined;
  if (recalled !== undefined) { add('BATCH_RECALLED', recalled); }
  add('OFFLINE_NO_RECALLS');  /* those made after the trust list was issued */
  if (code.serial !== null) { add('OFFLINE_NO_CLONES'); }
  if (code.signature === null) { add('UNSIGNED_CODE', 'an unsigned code cannot be checked offline'); }
  return result(code, 'genuine', key ? { id: key.producerId, name: key.producerName } : null);
}

async function checkSignature(code, trustList, add) {
  var s = code.signature, dot = s.indexOf('.');
  var kid = dot >= 0 ? s.slice(0, dot) : '', value = dot >= 0 ? s.slice(dot + 1) : '';
  if (dot < 0 || kid.length !== 8 || !value) { add('SIGNATURE_INVALID', 'the s parameter is not {kid}.{signature}'); return null; }
  var key = trustList.keys.get(kid);
  if (!key) {
    /* The list knows the keys certified before it was issued: a newer key is unknown, not forged. */
    add('UNSIGNED_CODE', 'key ' + kid + ' is not in the trust list' +
        (trustList.issuedAt ? ' issued at ' + trustList.issuedAt : '') +
        ': refresh the trust list and check again (keys certified after the list are unknown offline)');
    return null;
  }
  var problem = await verifyBytes(key.key, value, utf8(canonicalJSON(signedPayload(code))));
  if (problem) { add('SIGNATURE_INVALID', problem); return null; }
  if (!gtinCovered(code.gtin, key.prefixes)) {
    add('PREFIX_NOT_LICENSED', 'key ' + kid + ' is not certified for the company prefix of GTIN ' + code.gtin);
    return null;
  }
  if (key.status === 'revoked') {
    add('KEY_REVOKED', 'key ' + kid + ' was revoked (compromised at ' + (key.compromisedAt || 'an unknown time') + ')');
  }
  return key;
}
