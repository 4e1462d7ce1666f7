// The HTTP client both apps use: same-origin JSON, the session cookie, and errors a person can read.
// Every failure becomes an ApiError whose `message` says what failed; nothing throws a bare TypeError.

export type ErrorKind = 'offline' | 'auth' | 'forbidden' | 'bad-request' | 'server' | 'bad-response';

export class ApiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

export interface ApiClient {
  get<T>(path: string, signal?: AbortSignal): Promise<T>;
  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T>;
}

function kindOf(status: number): ErrorKind {
  if (status === 401) return 'auth';
  if (status === 403) return 'forbidden';
  if (status >= 400 && status < 500) return 'bad-request';
  return 'server';
}

async function errorFrom(resp: Response, what: string): Promise<ApiError> {
  let detail = '';
  try {
    const doc = (await resp.json()) as { error?: unknown };
    if (typeof doc?.error === 'string') detail = doc.error;
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  if (resp.status === 502 || resp.status === 503 || resp.status === 504) {
    detail = detail || 'the events service on this node is not answering';
  }
  return new ApiError(kindOf(resp.status), resp.status, `${what} failed (${resp.status}): ${detail || resp.statusText || 'no detail'}`);
}

export function createClient(base = '', fetchImpl: Fetch = (i, init) => fetch(i, init)): ApiClient {
  async function call<T>(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const what = `${method} ${path}`;
    let resp: Response;
    try {
      resp = await fetchImpl(base + path, {
        method,
        credentials: 'same-origin',
        headers: body === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      throw new ApiError('offline', 0, `${what} failed: the node cannot be reached (check the Wi-Fi or LAN)`);
    }
    if (!resp.ok) throw await errorFrom(resp, what);
    try {
      return (await resp.json()) as T;
    } catch {
      throw new ApiError('bad-response', resp.status, `${what} failed: the answer was not JSON`);
    }
  }
  return {
    get: (path, signal) => call('GET', path, undefined, signal),
    post: (path, body, signal) => call('POST', path, body, signal),
  };
}
