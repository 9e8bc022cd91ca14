CREATE TABLE "channels" (
	"channel" text PRIMARY KEY NOT NULL,
	"checkout" text NOT NULL,
	"updated_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "order_lines" ADD COLUMN "held" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "holder" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "status" text DEFAULT 'paid' NOT NULL;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "pay_by" bigint;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "paid_at" bigint;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "cancelled_at" bigint;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "cancel_reason" text;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "payment_url" text;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "payment_instructions" text;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "payment_reference" text;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "needs_refund" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX "order_lines_sku_held" ON "order_lines" USING btree ("sku","held");--> statement-breakpoint
CREATE INDEX "orders_status_pay_by" ON "orders" USING btree ("status","pay_by");--> statement-breakpoint
CREATE INDEX "orders_channel_status" ON "orders" USING btree ("channel","status");--> statement-breakpoint
CREATE INDEX "orders_holder_status" ON "orders" USING btree ("channel","holder","status");--> statement-breakpoint
CREATE INDEX "orders_payment_reference" ON "orders" USING btree ("payment_reference");--> statement-breakpoint
ALTER TABLE "order_lines" ADD CONSTRAINT "order_lines_held" CHECK ("order_lines"."held" >= 0 AND "order_lines"."held" <= "order_lines"."quantity");