// Byte-level BPE: GPT-NeoX style (and variants exercising Digits and every Split behaviour), Llama 3.
import { describeReference } from './reference-suite.js';

const BYTE_LEVEL = ['neox', 'neox-digits', 'neox-split', 'llama3'];
describeReference(BYTE_LEVEL);
