DROP INDEX "stock_movements_sku";--> statement-breakpoint
CREATE INDEX "oauth_grants_listing" ON "oauth_grants" USING btree (("revoked_at" IS NOT NULL),"created_at" DESC,"id");--> statement-breakpoint
CREATE INDEX "orders_created" ON "orders" USING btree ("created_at","channel","currency","total_minor");--> statement-breakpoint
CREATE INDEX "stock_movements_sku_id" ON "stock_movements" USING btree ("sku","id");--> statement-breakpoint
CREATE INDEX "stock_movements_channel_id" ON "stock_movements" USING btree ("channel","id");--> statement-breakpoint
CREATE INDEX "stock_movements_kind_id" ON "stock_movements" USING btree ("kind","id");