// Login against the events service's session (POST /api/auth/login sets a Secure, SameSite cookie).
import type { ApiClient } from './api';
import { ApiError } from './api';

export type Role = 'viewer' | 'operator' | 'admin';
export interface Me {
  user: string;
  role: Role;
}

export async function whoAmI(api: ApiClient): Promise<Me | null> {
  try {
    return await api.get<Me>('/api/auth/me');
  } catch (e) {
    if (e instanceof ApiError && e.kind === 'auth') return null;
    throw e;
  }
}

export async function login(api: ApiClient, username: string, password: string): Promise<Me> {
  if (!username.trim() || !password) throw new ApiError('bad-request', 400, 'Enter your user name and password.');
  try {
    return await api.post<Me>('/api/auth/login', { username: username.trim(), password });
  } catch (e) {
    if (e instanceof ApiError && e.kind === 'auth') throw new ApiError('auth', 401, 'Wrong user name or password.');
    if (e instanceof ApiError && e.status === 429) {
      throw new ApiError('bad-request', 429, e.message.replace(/^POST \/api\/auth\/login failed \(429\): /, ''));
    }
    throw e;
  }
}

export async function logout(api: ApiClient): Promise<void> {
  await api.post('/api/auth/logout', {});
}
