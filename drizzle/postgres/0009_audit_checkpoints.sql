CREATE TABLE "audit_checkpoints" (
	"id" integer PRIMARY KEY NOT NULL,
	"ledger_id" bigint NOT NULL,
	"at" bigint NOT NULL,
	"fingerprint" text NOT NULL,
	"sku_totals" text NOT NULL
);
--> statement-breakpoint
CREATE INDEX "cart_lines_holding" ON "cart_lines" USING btree ("cart_id") WHERE "cart_lines"."held" != 0;--> statement-breakpoint
CREATE INDEX "order_lines_holding" ON "order_lines" USING btree ("order_id") WHERE "order_lines"."held" != 0;