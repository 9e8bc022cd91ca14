CREATE TABLE "mcp_sessions" (
	"id_hash" text PRIMARY KEY NOT NULL,
	"credential_id" text NOT NULL,
	"channel" text NOT NULL,
	"init" text NOT NULL,
	"created_at" bigint NOT NULL,
	"last_used_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE INDEX "mcp_sessions_credential" ON "mcp_sessions" USING btree ("credential_id");--> statement-breakpoint
CREATE INDEX "mcp_sessions_expiry" ON "mcp_sessions" USING btree ("expires_at");