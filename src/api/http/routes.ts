import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';

/**
 * Every route of the HTTP API is declared through `addRoute`, which registers it with fastify
 * (schemas enforced) and keeps its description for the OpenAPI document.
 */
export interface RouteSchema {
  params?: object;
  querystring?: object;
  headers?: object;
  body?: object;
}

export interface RouteSpec {
  method: HTTPMethods;
  url: string;
  summary: string;
  description?: string;
  tags: string[];
  schema: RouteSchema;
  /** Documentation only: a body checked by the handler (the single-event form of an append takes any body). */
  documentedBody?: { contentTypes: string[]; schema: object };
  /** Status → description, plus the content type of a success when it is not JSON. */
  responses: Record<number, string>;
  successContentType?: string;
  handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
}

export class RouteTable {
  readonly routes: RouteSpec[] = [];

  constructor(private readonly app: FastifyInstance) {}

  add(spec: RouteSpec): void {
    this.routes.push(spec);
    this.app.route({ method: spec.method, url: spec.url, schema: spec.schema, handler: spec.handler });
  }
}
