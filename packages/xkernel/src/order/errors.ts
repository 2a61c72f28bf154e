/** How the building blocks build an Order's errors: each Order passes a factory for its own. */

/** Builds the Order's own error class for the codes the building blocks report. */
export type OrderErrorFactory = (code: 'INVALID_ARGUMENT' | 'CLOSED', message: string) => Error
