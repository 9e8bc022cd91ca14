// One class per OAuth error code, each with its HTTP status and its wire form (RFC 6749 §5.2, RFC 7591 §3.2.2).
import type { Response } from 'express';

/** A refusal a client can read: `{error, error_description}` with the status its code calls for. */
export abstract class OAuthError extends Error {
  abstract readonly code: string;
  readonly status: number = 400;

  toResponseObject(): { error: string; error_description: string } {
    return { error: this.code, error_description: this.message };
  }

  send(res: Response): void {
    res.status(this.status).json(this.toResponseObject());
  }
}

export class InvalidRequestError extends OAuthError {
  readonly code = 'invalid_request';
}

/** 401: the one answer that makes a host such as Claude register again. */
export class InvalidClientError extends OAuthError {
  readonly code = 'invalid_client';
  override readonly status = 401;
}

export class InvalidGrantError extends OAuthError {
  readonly code = 'invalid_grant';
}

export class UnsupportedGrantTypeError extends OAuthError {
  readonly code = 'unsupported_grant_type';
}

export class UnsupportedResponseTypeError extends OAuthError {
  readonly code = 'unsupported_response_type';
}

export class InvalidScopeError extends OAuthError {
  readonly code = 'invalid_scope';
}

/** RFC 8707: a resource this server does not issue tokens for. */
export class InvalidTargetError extends OAuthError {
  readonly code = 'invalid_target';
}

export class AccessDeniedError extends OAuthError {
  readonly code = 'access_denied';
}

/** RFC 7591 §3.2.2: a registration whose metadata cannot be accepted. */
export class InvalidClientMetadataError extends OAuthError {
  readonly code = 'invalid_client_metadata';
}
