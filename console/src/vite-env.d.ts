// Vite's declarations for what the bundler imports besides code (style.css).
/// <reference types="vite/client" />
