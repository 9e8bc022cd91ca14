DROP INDEX "orders_created";--> statement-breakpoint
CREATE INDEX "orders_paid_sales" ON "orders" USING btree ("created_at","channel","currency","total_minor") WHERE status = 'paid';--> statement-breakpoint
CREATE INDEX "orders_listing" ON "orders" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "orders_status_listing" ON "orders" USING btree ("status","created_at","id");--> statement-breakpoint
CREATE INDEX "orders_channel_listing" ON "orders" USING btree ("channel","created_at","id");--> statement-breakpoint
CREATE INDEX "orders_needs_refund" ON "orders" USING btree ("created_at","id") WHERE needs_refund;