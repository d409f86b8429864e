/**
 * `google.api.http` path templates in OpenAPI form: `{field.path=sub/*}` becomes `{field.path}`
 * (the variable's name as written, dotted for nested fields), anonymous `*` and `**` segments
 * become parameters of their own (`{wildcard1}`), and a trailing `:verb` stays as it is.
 */

export interface OpenApiPathParts {
  /** The OpenAPI path, e.g. `/v1/deliveries/{delivery_id}`. */
  readonly path: string;
  /** Variables declared with a sub-template (`{name=shelves/*}`), by name. */
  readonly subTemplates: ReadonlyMap<string, string>;
  /** Anonymous wildcard segments, in order, with the parameter name each was given. */
  readonly wildcards: readonly { readonly name: string; readonly segment: "*" | "**" }[];
}

/** The segments of a template path, `/` inside `{...}` not splitting. */
function segmentsOf(path: string): string[] {
  const segments: string[] = [];
  let current = "";
  let depth = 0;
  for (const char of path.slice(1)) {
    if (char === "{") depth++;
    if (char === "}") depth--;
    if (char === "/" && depth === 0) {
      segments.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  segments.push(current);
  return segments;
}

export function openApiPath(source: string): OpenApiPathParts {
  const verbAt = source.lastIndexOf(":");
  const hasVerb = verbAt > source.lastIndexOf("}") && verbAt > source.lastIndexOf("/");
  const path = hasVerb ? source.slice(0, verbAt) : source;
  const verb = hasVerb ? source.slice(verbAt) : "";

  const subTemplates = new Map<string, string>();
  const wildcards: { name: string; segment: "*" | "**" }[] = [];
  const converted = segmentsOf(path).map((segment) => {
    if (segment.startsWith("{") && segment.endsWith("}")) {
      const inner = segment.slice(1, -1);
      const at = inner.indexOf("=");
      if (at < 0) return segment;
      const name = inner.slice(0, at);
      subTemplates.set(name, inner.slice(at + 1));
      return `{${name}}`;
    }
    if (segment === "*" || segment === "**") {
      const name = `wildcard${wildcards.length + 1}`;
      wildcards.push({ name, segment });
      return `{${name}}`;
    }
    return segment;
  });
  return { path: `/${converted.join("/")}${verb}`, subTemplates, wildcards };
}
