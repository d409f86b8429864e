// Style sheets imported for their side effect: esbuild bundles them into the console's CSS.
declare module "*.css";
