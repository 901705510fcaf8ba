#!/usr/bin/env node
/** The `statespace` binary. */
import { processIO } from './io.js';
import { main } from './main.js';

const code = await main(process.argv.slice(2), processIO);
// Dawn keeps the event loop alive after the device is done; exit explicitly.
process.exit(code);
