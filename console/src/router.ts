import { useEffect, useState } from 'preact/hooks';

/**
 * Hash routes (`#/inventory`, `#/users/<ref>`): the server serves one page, the browser's
 * history and bookmarks work, and nothing but a view name and a user reference (never a
 * token) is ever in the URL.
 */
export type Route =
  | { view: 'overview' }
  | { view: 'inventory' }
  | { view: 'user'; userReference: string | null }
  | { view: 'audit' }
  | { view: 'erasures' };

export function parseRoute(hash: string): Route {
  const [, view = '', ...rest] = hash.replace(/^#/, '').split('/');
  switch (view) {
    case 'inventory':
      return { view: 'inventory' };
    case 'users': {
      const ref = rest.join('/');
      return { view: 'user', userReference: ref ? safeDecode(ref) : null };
    }
    case 'audit':
      return { view: 'audit' };
    case 'erasures':
      return { view: 'erasures' };
    default:
      return { view: 'overview' };
  }
}

function safeDecode(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

export function userHref(userReference: string): string {
  return `#/users/${encodeURIComponent(userReference)}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
