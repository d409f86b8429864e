/**
 * `google.api.http` path templates compiled into matchers: literal segments, `*` (one segment),
 * `**` (the rest of the path), variables `{field.path}` (one segment) or `{field.path=sub/*}`
 * (the segments the sub-template matches, slashes kept), and a trailing `:verb`.
 */

export interface PathTemplate {
  /** The template as written, e.g. `/v1/deliveries/{delivery_id}`. */
  readonly source: string;
  /** The field paths of the variables, in order, e.g. `[["delivery_id"]]`. */
  readonly variables: readonly (readonly string[])[];
  /** Bound variable values of `path`, or undefined when it does not match. */
  match(path: string): Map<string, string> | undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The regular expression of template segments without variables (`a/*`, `**`). */
function segmentsPattern(segments: string, source: string): string {
  return segments
    .split("/")
    .map((segment) => {
      if (segment === "*") return "[^/]+";
      if (segment === "**") return ".+";
      if (segment === "" || /[{}=*]/.test(segment)) throw new Error(`bad path template ${source}`);
      return escapeRegExp(segment);
    })
    .join("/");
}

function decodeSegments(value: string): string {
  return value
    .split("/")
    .map((segment) => decodeURIComponent(segment))
    .join("/");
}

export function compilePathTemplate(source: string): PathTemplate {
  if (!source.startsWith("/")) throw new Error(`path template ${source} must start with /`);
  const verbAt = source.lastIndexOf(":");
  const hasVerb = verbAt > source.lastIndexOf("}") && verbAt > source.lastIndexOf("/");
  const path = hasVerb ? source.slice(0, verbAt) : source;
  const verb = hasVerb ? source.slice(verbAt) : "";

  const variables: string[][] = [];
  let pattern = "";
  let rest = path.slice(1);
  while (rest.length > 0) {
    let piece: string;
    if (rest.startsWith("{")) {
      const end = rest.indexOf("}");
      if (end < 0) throw new Error(`unclosed variable in path template ${source}`);
      const inner = rest.slice(1, end);
      const [name = "", sub] = inner.split("=", 2);
      if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(name)) {
        throw new Error(`bad variable ${inner} in path template ${source}`);
      }
      variables.push(name.split("."));
      piece = `(${sub === undefined ? "[^/]+" : segmentsPattern(sub, source)})`;
      rest = rest.slice(end + 1);
    } else {
      const end = rest.indexOf("/");
      const segment = end < 0 ? rest : rest.slice(0, end);
      piece = segmentsPattern(segment, source);
      rest = end < 0 ? "" : rest.slice(end);
    }
    pattern += `/${piece}`;
    if (rest.startsWith("/")) rest = rest.slice(1);
    else if (rest.length > 0) throw new Error(`bad path template ${source}`);
  }
  const regex = new RegExp(`^${pattern}${escapeRegExp(verb)}$`);

  return {
    source,
    variables,
    match(candidate) {
      const found = regex.exec(candidate);
      if (!found) return undefined;
      const bound = new Map<string, string>();
      try {
        variables.forEach((fieldPath, i) => bound.set(fieldPath.join("."), decodeSegments(found[i + 1] ?? "")));
      } catch {
        return undefined; // malformed percent-encoding matches no route
      }
      return bound;
    },
  };
}
